#!/usr/bin/env bash
# Check libkcm's layering: every call from one user/lib object into another must go to a
# file on a lower line of the layer table (user/lib/LAYERS). Fails, naming the call, on
# a call sideways or upwards (a cycle needs one) and on an object the table does not place.
#
#   scripts/check-layers.sh [OBJDIR [TABLE]]    defaults: build/lib user/lib/LAYERS
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
objdir=${1:-$top/build/lib}
table=${2:-$top/user/lib/LAYERS}

[ -r "$table" ] || { echo "check-layers: cannot read the layer table $table" >&2; exit 2; }
compgen -G "$objdir/*.o" >/dev/null || {
	echo "check-layers: no objects in $objdir (run make first)" >&2
	exit 2
}

# file -> layer number, from the table
declare -A layer name
n=0
while IFS= read -r line; do
	line=${line%%#*}
	[[ $line == *:* ]] || continue
	for f in ${line#*:}; do
		layer[$f]=$n
		name[$f]=${line%%:*}
	done
	n=$((n + 1))
done <"$table"

# symbol -> the object defining it
declare -A owner
bad=0
for o in "$objdir"/*.o; do
	f=$(basename "$o" .o)
	if [ -z "${layer[$f]+x}" ]; then
		echo "check-layers: $f.o is not in $table: place it on a layer" >&2
		bad=1
	fi
	while read -r _ type sym; do
		case $type in T | D | B | R) owner[$sym]=$f ;; esac
	done < <(nm "$o")
done
[ $bad = 0 ] || exit 1

calls=0
for o in "$objdir"/*.o; do
	f=$(basename "$o" .o)
	while read -r type sym; do
		[ "$type" = U ] || continue
		g=${owner[$sym]:-}
		[ -n "$g" ] && [ "$g" != "$f" ] || continue
		calls=$((calls + 1))
		if [ "${layer[$g]}" -ge "${layer[$f]}" ]; then
			echo "check-layers: $f (${name[$f]}) calls $sym in $g (${name[$g]}):" \
				"not a lower layer" >&2
			bad=1
		fi
	done < <(nm "$o")
done
[ $bad = 0 ] || exit 1
echo "check-layers: $(ls "$objdir"/*.o | wc -l) objects on $n layers, $calls calls between files, all downwards"
