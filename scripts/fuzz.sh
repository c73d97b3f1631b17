#!/usr/bin/env bash
# Runs every cargo-fuzz target of fuzz/ for SECONDS each (default 30), one after the
# other, and fails on the first crash (its input is left in fuzz/artifacts/<target>/).
# Needs a nightly toolchain and cargo-fuzz (both installed when missing).
# Seeds: fuzz/seeds/<target>/ (written by fuzz/examples/make_seeds.rs, checked in) and the
# image fixtures of rubra-image and rubra-watermark; what the fuzzer learns goes to
# fuzz/corpus/<target>/ (not checked in), which later runs start from.
# FUZZ_TARGETS="csvsum slowlog" runs only those; FUZZ_FEATURES= (empty) leaves out
# watch_pointer, whose HTTP client (rustls, aws-lc) lengthens the build by minutes.
# FUZZ_SEED=N fixes libFuzzer's random seed, so a run explores the same inputs in the same
# order on every machine (a faster machine only gets further): CI uses it, so that a red
# run means a bug the seeded run reaches, not the luck of the draw.
# A summary line per target (time, exit status, libFuzzer's last "#runs cov: ft: ..."
# line) is printed and written to fuzz/last-run.txt.
set -euo pipefail
seconds=${1:-30}
cd "$(dirname "$0")/../fuzz"

# libFuzzer's instrumentation needs nightly; a fresh machine may have stable only.
if ! cargo +nightly --version >/dev/null 2>&1; then
  rustup toolchain install nightly --profile minimal
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

features=${FUZZ_FEATURES-watch}
default_targets="csvsum jsondiff_parse jsondiff_patch image_probe watermark jpeg_baseline skip_lanes slowlog timestamp parse_instant stats_hist"
if [ "$features" = watch ]; then default_targets="$default_targets watch_pointer"; fi
targets=${FUZZ_TARGETS:-$default_targets}
# cargo-fuzz's default build: optimised, with debug assertions and overflow checks.
build_flags=()
if [ -n "$features" ]; then build_flags+=(--features "$features"); fi

echo "== building the fuzz targets"
cargo +nightly fuzz build ${build_flags[@]+"${build_flags[@]}"}

for t in image_probe jpeg_baseline watermark skip_lanes; do
  mkdir -p "corpus/$t"
  for f in ../crates/rubra-image/tests/fixtures/* ../crates/rubra-watermark/tests/fixtures/*; do
    case "$t" in
      watermark) { printf '\x07'; cat "$f"; } >"corpus/$t/fixture-$(basename "$f")" ;;
      # Two bytes of how far to skip: three quarters of the MCUs.
      skip_lanes) { printf '\x00\xc0'; cat "$f"; } >"corpus/$t/fixture-$(basename "$f")" ;;
      *) cp "$f" "corpus/$t/fixture-$(basename "$f")" ;;
    esac
  done
done

dict_for() {
  case "$1" in
    csvsum) echo dict/csv.dict ;;
    jsondiff_*|watch_pointer|slowlog) echo dict/json.dict ;;
    image_probe|watermark|jpeg_baseline|skip_lanes) echo dict/jpeg.dict ;;
    *) echo "" ;;
  esac
}

mkdir -p logs
: >last-run.txt
for t in $targets; do
  echo "== fuzzing $t for ${seconds}s"
  dict=$(dict_for "$t")
  # No leak detection: threads that end as a run ends (csvsum's workers) leave std's
  # thread-local channel context behind, which LeakSanitizer reports as a leak.
  args=(-max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 -detect_leaks=0)
  if [ -n "$dict" ]; then args+=(-dict="$dict"); fi
  if [ -n "${FUZZ_SEED:-}" ]; then args+=(-seed="$FUZZ_SEED"); fi
  mkdir -p "corpus/$t" "seeds/$t"
  start=$(date +%s)
  status=0
  cargo +nightly fuzz run ${build_flags[@]+"${build_flags[@]}"} "$t" "corpus/$t" "seeds/$t" -- "${args[@]}" >"logs/$t.log" 2>&1 || status=$?
  took=$(( $(date +%s) - start ))
  # libFuzzer's last status line: "#N DONE cov: C ft: F corp: ..." (or the crash).
  last=$(grep -E '^#[0-9]+' "logs/$t.log" | tail -n 1 || true)
  echo "$t: ${took}s, exit $status, $last" | tee -a last-run.txt
  if [ "$status" != 0 ]; then
    tail -n 60 "logs/$t.log"
    echo "fuzz target $t failed: input in fuzz/artifacts/$t/, log in fuzz/logs/$t.log" >&2
    exit 1
  fi
done
echo "== all targets ran for ${seconds}s each without a crash"
