#!/usr/bin/env bash
# Runs every saved crash of a target and counts them by panic message (numbers
# masked), to tell new findings from known ones: fuzz/triage.sh TARGET [FILES...]
set -uo pipefail
cd "$(dirname "$0")"
t=$1; shift
bin=target/x86_64-unknown-linux-gnu/release/$t
files=("$@")
[ ${#files[@]} -gt 0 ] || files=(artifacts/"$t"/*)
for f in "${files[@]}"; do
  out=$(timeout 30 "$bin" -runs=1 "$f" 2>&1)
  loc=$(grep -m1 "panicked at" <<<"$out" | sed -E 's/.*panicked at //')
  msg=$(grep -m1 -A1 "panicked at" <<<"$out" | tail -1 | sed -E 's/[0-9]+/N/g')
  [ -z "$loc" ] || msg="$loc $msg"
  [ -n "$msg" ] || msg=$(grep -m1 -E "ERROR|timeout" <<<"$out" | sed -E 's/[0-9]+/N/g')
  [ -n "$msg" ] || msg="(no crash)"
  echo "$msg	$f"
done | sort | awk -F'\t' '{c[$1]++; ex[$1]=$2} END {for (m in c) printf "%4d  %s\n      e.g. %s\n", c[m], m, ex[m]}'
