#!/usr/bin/env bash
# Every citation of docs/design.md in the repository names a section the document has, and nothing
# cites the outside spec the rules were once numbered by. Usage: design_links_test.sh REPO_ROOT
set -euo pipefail
root=${1:?usage: design_links_test.sh REPO_ROOT}
cd "$root"

# Anchors as GitHub makes them from the "## " and "### " headings: lower case, punctuation
# dropped, spaces to hyphens.
anchors=$(sed -n 's/^###* //p' docs/design.md | tr 'A-Z' 'a-z' | sed 's/[^a-z0-9 -]//g; s/ /-/g')

failed=0
files=$(git ls-files 2>/dev/null || find . -type f -not -path './build*' -not -path './.git/*')
while IFS=: read -r file line anchor; do
  if ! grep -qx -- "$anchor" <<<"$anchors"; then
    echo "$file:$line: cites docs/design.md#$anchor, which docs/design.md has no heading for"
    failed=1
  fi
done < <(grep -noE 'design\.md#[a-z0-9-]+' $files 2>/dev/null | sed 's/design\.md#//')

outside='SPEC'' §'  # split, so that this file does not match itself
if grep -n "$outside" $files 2>/dev/null; then
  echo "the lines above cite a document outside the repository: cite docs/design.md instead"
  failed=1
fi
exit $failed
