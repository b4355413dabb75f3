#!/usr/bin/env bash
# Build the collection tarball as users get it and run Galaxy's own import check on it
# (galaxy-importer, in its own pinned venv .venv-galaxy). Exit non-zero when the import fails.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
# shellcheck source=scripts/venv.sh
. "$top/scripts/venv.sh"
ensure_venv galaxy "$top/.venv-galaxy" "$python" -r "$top/tests/galaxy/requirements.txt"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# Built from a copy of the tracked and new files, so a file saved during the build cannot
# make FILES.json disagree with the file packed.
mkdir "$out/src"
(cd "$top" && git ls-files -co --exclude-standard -z) | rsync -a --from0 --files-from=- "$top/" "$out/src/"
"$top/.venv/bin/ansible-galaxy" collection build --output-path "$out" "$out/src" >/dev/null
tarball=$(ls "$out"/*.tar.gz)
# The importer finds ansible-doc and ansible-lint on PATH; it writes nothing beside the tarball
# but its log, which is printed whole (so CI's log keeps what Galaxy would say on upload).
status=0
(cd "$out" && PATH="$top/.venv-galaxy/bin:$PATH" "$top/.venv-galaxy/bin/python" -m galaxy_importer.main "$tarball" > "$out/import.log" 2>&1) ||
    status=$?
echo "galaxy-import: galaxy-importer's output for $(basename "$tarball"):"
sed 's/^/  | /' "$out/import.log"
if [ "$status" -ne 0 ] || ! grep -q "Importer processing completed successfully" "$out/import.log"; then
    echo "galaxy-import: the import of $(basename "$tarball") failed (exit $status)" >&2
    exit 1
fi
if grep -qE "^(WARNING|ERROR)" "$out/import.log"; then
    echo "galaxy-import: the importer printed warnings or errors (above)" >&2
    exit 1
fi
echo "galaxy-import: $(basename "$tarball") imports cleanly"
