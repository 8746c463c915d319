#!/usr/bin/env bash
# Writes `deepnet help` into launcher/README.md, between its "deepnet help: begin/end" markers.
# tests/launch (launch_command_table_test) fails while the two differ.
#   scripts/update_launcher_readme.sh [path/to/deepnet]   (default build/launcher/deepnet)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
deepnet=${1:-$root/build/launcher/deepnet}
readme=$root/launcher/README.md
help=$(mktemp)
trap 'rm -f "$help" "$help.new"' EXIT
"$deepnet" help > "$help"
awk -v help="$help" '
  /^<!-- deepnet help: begin -->$/ {
    print; print "```"; while ((getline line < help) > 0) print line; print "```"; skip = 1; next
  }
  /^<!-- deepnet help: end -->$/ { skip = 0 }
  !skip { print }
' "$readme" > "$help.new"
grep -q '^<!-- deepnet help: end -->$' "$help.new" || {
  echo "update_launcher_readme: $readme lacks the deepnet help markers" >&2
  exit 1
}
cat "$help.new" > "$readme"
echo "updated $readme"
