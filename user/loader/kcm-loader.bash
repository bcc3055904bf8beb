# bash completion for kcm-loader: commands, each command's long options (read from its
# --help), mux names (from the pin folder) and shipped parsers (kcm-loader parsers).
# Installed as PREFIX/share/bash-completion/completions/kcm-loader.

_kcm_loader() {
	local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
	local cmds="create attach unattach parsers status connect monitor stats destroy clean check serve help"
	local i cmd="" at=0

	for ((i = 1; i < COMP_CWORD; i++)); do
		case ${COMP_WORDS[i]} in
		-*) ;;
		*) cmd=${COMP_WORDS[i]}; at=$i; break ;;
		esac
	done
	if [ -z "$cmd" ]; then
		mapfile -t COMPREPLY < <(compgen -W "$cmds -j --json -p --pretty -v --verbose -h --help -V --version" -- "$cur")
		return
	fi
	case $prev in
	--prog)
		mapfile -t COMPREPLY < <(compgen -f -- "$cur")
		return ;;
	--frame | --split)
		mapfile -t COMPREPLY < <(compgen -W "$(kcm-loader parsers 2>/dev/null | awk '/^[a-z]/ { print $1 }') prog" -- "$cur")
		return ;;
	--cgroup | --ready-file | --socket)
		mapfile -t COMPREPLY < <(compgen -f -- "$cur")
		return ;;
	esac
	if [[ $cur == -* ]]; then
		mapfile -t COMPREPLY < <(compgen -W "$(kcm-loader "$cmd" --help 2>/dev/null |
			grep -oE -- '--[a-z][a-z-]*' | sort -u) -j -p -v" -- "$cur")
		return
	fi
	case $cmd in
	help)
		[ "$COMP_CWORD" -eq $((at + 1)) ] &&
			mapfile -t COMPREPLY < <(compgen -W "$cmds" -- "$cur") ;;
	attach | unattach | status | connect | monitor | stats | destroy)
		# the word after the command names an existing mux
		[ "$COMP_CWORD" -eq $((at + 1)) ] &&
			mapfile -t COMPREPLY < <(compgen -W "$(ls "${KCM_BPFFS:-/sys/fs/bpf}/kcm" 2>/dev/null)" -- "$cur") ;;
	esac
}
complete -F _kcm_loader kcm-loader
