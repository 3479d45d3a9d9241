#!/bin/sh
# make deb: binary packages from this tree, offline, into dist/.
#
# dpkg-buildpackage writes its results next to the source folder, and
# dh_auto_clean runs `make clean`; so it works on a copy of the tree
# under build/deb/ (the files git knows, or all but build/ and dist/
# outside a git checkout), never on the tree itself or its parent.
# Then lintian: an error or a warning fails (none is left; see the note
# at the top of debian/rules).
set -eu
cd "$(dirname "$0")/.."

version=$(dpkg-parsechangelog -S Version)
work=build/deb
src=$work/authbridge-$version
rm -rf "$work"
mkdir -p "$src" dist
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git ls-files -z --cached --others --exclude-standard |
        xargs -0 sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh |
        tar --null -T - -cf - | tar -xf - -C "$src"
else
    tar --exclude=./build --exclude=./dist --exclude=./run -cf - . |
        tar -xf - -C "$src"
fi

# -us -uc: nothing to sign; -b: binary packages only (no source upload).
(cd "$src" && dpkg-buildpackage -us -uc -b) > "$work/build.log" 2>&1 || {
    tail -40 "$work/build.log" >&2
    echo "authbridge: dpkg-buildpackage failed; the log: $work/build.log" >&2
    exit 1
}

rm -f dist/authbridge-*.deb
for deb in "$work"/authbridge-*_"$version"_*.deb; do
    case "$deb" in *-dbgsym_*) continue ;; esac
    cp "$deb" dist/
done
ls dist/authbridge-*.deb

# Info tags are printed too (-I): the two left are explained in debian/rules.
rc=0
lintian -I --fail-on error,warning --tag-display-limit 0 \
    dist/authbridge-*_"$version"_*.deb > "$work/lintian.log" 2>&1 || rc=$?
grep -v '^running with root privileges' "$work/lintian.log" || true
if [ "$rc" -ne 0 ]; then
    echo "authbridge: lintian reports errors or warnings (above)" >&2
    exit 1
fi
