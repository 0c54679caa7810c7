#!/usr/bin/env bash
# Whole-process comparison of the chunkstore tool with restic and borg on one generated data set
# (unique, duplicated, shifted and text data, about 2 GiB by default), all on the same disk in one
# run: backup, incremental backup after a small change, prune + GC, verify. Prints the times, the
# stored sizes and the ratios against chunkstore.
#
#   scripts/compare.sh [WORKDIR]        # default WORKDIR: a fresh directory under /var/tmp
#   SIZE_MIB=512 scripts/compare.sh     # a smaller data set
#
# restic and borg come from Debian's packages and are installed when missing (needs root).
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE_MIB=${SIZE_MIB:-2048}
WORK=${1:-$(mktemp -d /var/tmp/compare.XXXXXX)}
mkdir -p "$WORK"
echo "work directory: $WORK (data set about $SIZE_MIB MiB)" >&2

need() {
    command -v "$1" >/dev/null 2>&1 && return
    echo "installing $2" >&2
    if [ "$(id -u)" != 0 ]; then echo "$1 is missing and this is not root: install $2" >&2; exit 1; fi
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2") >&2
}
need restic restic
need borg borgbackup
need python3 python3
need bc bc

cargo build --release -q -p chunkstore
TOOL=${CARGO_TARGET_DIR:-$PWD/target}/release/chunkstore

# The data set: deterministic (seeded), generated once per work directory.
DATA=$WORK/data
if [ ! -d "$DATA" ]; then
    python3 - "$DATA" "$SIZE_MIB" <<'PY'
import os, random, sys
root, total = sys.argv[1], int(sys.argv[2]) << 20
rng = random.Random(20261125)
unit = max(total // 20, 1 << 20)          # 5 % of the set
def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
# 40 % unique random data
for i in range(8):
    write(f"{root}/unique/u{i}.bin", rng.randbytes(unit))
# 20 %: one random file and three copies of it
blob = rng.randbytes(unit)
for i in range(4):
    write(f"{root}/dup/d{i}.bin", blob)
# 15 %: a random file, the same with 1 KiB inserted at the front, and with 7 bytes in the middle
base = rng.randbytes(unit)
write(f"{root}/shifted/s0.bin", base)
write(f"{root}/shifted/s1.bin", rng.randbytes(1024) + base)
write(f"{root}/shifted/s2.bin", base[: unit // 2] + b"shifted" + base[unit // 2 :])
# 25 %: text (log lines)
words = ["backup", "chunk", "index", "store", "error", "verify", "snapshot", "prune", "gc", "ok"]
for i in range(5):
    lines, size = [], 0
    while size < unit:
        line = f"2026-11-25T{rng.randrange(24):02}:{rng.randrange(60):02}:00 host{rng.randrange(50)} " + " ".join(rng.choice(words) for _ in range(12)) + f" id={rng.randrange(10**9)}\n"
        lines.append(line)
        size += len(line)
    write(f"{root}/text/t{i}.log", "".join(lines).encode())
PY
fi
echo "data set: $(find "$DATA" -type f -printf '%s\n' | awk '{ s += $1 } END { printf "%d", s / 1048576 }') MiB" >&2

export RESTIC_PASSWORD=compare RESTIC_REPOSITORY=$WORK/restic BORG_REPO=$WORK/borg
export BORG_PASSPHRASE="" BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
export CHUNKSTORE=$WORK/chunkstore CHUNKSTORE_CACHE_DIR=$WORK/chunkstore-cache

declare -A T
timed() { # name command...: runs it, records the wall time in seconds
    local name=$1; shift
    sync
    local start end
    start=$(date +%s.%N)
    "$@" >"$WORK/$name.log" 2>&1 || { echo "$name failed, see $WORK/$name.log" >&2; exit 1; }
    end=$(date +%s.%N)
    T[$name]=$(echo "$end - $start" | bc -l)
    echo "$name: ${T[$name]} s" >&2
}
# Bytes of file contents, in MiB: directory blocks are left out (a datastore has 256 chunk
# prefix directories by default, or 65536 with --fanout 4, whatever it stores).
size_mib() { find "$1" -type f -printf '%s\n' | awk '{ s += $1 } END { printf "%d", s / 1048576 }'; }

rm -rf "$WORK/chunkstore" "$WORK/chunkstore-cache" "$WORK/restic" "$WORK/borg"
"$TOOL" --quiet init >/dev/null
restic init -q
borg init -e none >/dev/null

timed cs_backup    "$TOOL" --quiet backup host/data "$DATA" --time 2026-01-01T00:00:00Z
timed restic_backup restic backup -q "$DATA"
timed borg_backup  borg create "::one" "$DATA"
S_CS1=$(size_mib "$WORK/chunkstore"); S_RE1=$(size_mib "$WORK/restic"); S_BO1=$(size_mib "$WORK/borg")

# A small change: one text file grows, one unique file is rewritten in its middle.
echo "one more line" >> "$DATA/text/t0.log"
printf 'changed' | dd of="$DATA/unique/u0.bin" bs=1 seek=1000000 conv=notrunc status=none

timed cs_incr      "$TOOL" --quiet backup host/data "$DATA" --time 2026-01-02T00:00:00Z
timed restic_incr  restic backup -q "$DATA"
timed borg_incr    borg create "::two" "$DATA"

timed cs_prune_gc      sh -c "'$TOOL' --quiet prune host/data --keep-last 1 && '$TOOL' --quiet gc --cutoff-minutes 1"
timed restic_prune_gc  restic forget -q --keep-last 1 --prune
timed borg_prune_gc    sh -c "borg prune --keep-last 1 && borg compact"

timed cs_verify     "$TOOL" --quiet verify
timed restic_verify restic check --read-data
timed borg_verify   borg check --verify-data
S_CS2=$(size_mib "$WORK/chunkstore"); S_RE2=$(size_mib "$WORK/restic"); S_BO2=$(size_mib "$WORK/borg")

ratio() { echo "scale=2; $1 / $2" | bc -l; }
echo
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r); data set $(size_mib "$DATA") MiB; restic $(restic version | awk '{print $2}'), borg $(borg --version | awk '{print $2}')"
echo
echo "| phase | chunkstore (s) | restic (s) | borg (s) | chunkstore / restic | chunkstore / borg |"
echo "|---|---|---|---|---|---|"
for phase in backup incr prune_gc verify; do
    cs=${T[cs_$phase]}; re=${T[restic_$phase]}; bo=${T[borg_$phase]}
    printf '| %s | %.2f | %.2f | %.2f | %s | %s |\n' "$phase" "$cs" "$re" "$bo" "$(ratio "$cs" "$re")" "$(ratio "$cs" "$bo")"
done
echo
echo "| stored (MiB of file contents) | chunkstore | restic | borg | chunkstore / restic | chunkstore / borg |"
echo "|---|---|---|---|---|---|"
echo "| after the first backup | $S_CS1 | $S_RE1 | $S_BO1 | $(ratio "$S_CS1" "$S_RE1") | $(ratio "$S_CS1" "$S_BO1") |"
echo "| after prune + GC | $S_CS2 | $S_RE2 | $S_BO2 | $(ratio "$S_CS2" "$S_RE2") | $(ratio "$S_CS2" "$S_BO2") |"
echo
echo "All three compress by default: chunkstore zstd level 3, restic zstd (auto), borg lz4."
