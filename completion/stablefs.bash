# bash completion for stablefs(1)                          -*- shell-script -*-
#
#   stablefs [options] SRC MNT
#   stablefs stats MNT [--json]
#   stablefs snapshot MNT NAME | --list MNT [--json] | --delete MNT NAME
#
# -o takes a comma-separated list: the word after the last comma is
# completed, from stablefs's own options and libfuse's common ones.

_stablefs_o_values()
{
	local cur=$1 prefix opt
	prefix=
	if [[ $cur == *,* ]]; then
		prefix=${cur%,*},
		cur=${cur##*,}
	fi
	case $cur in
	store=*)
		opt=${cur%%=*}=
		compopt -o nospace 2>/dev/null
		local IFS=$'\n'
		COMPREPLY=($(compgen -d -P "$prefix$opt" -- "${cur#*=}"))
		return
		;;
	snapshot=*)
		COMPREPLY=($(compgen -P "${prefix}snapshot=" -W 'on off' -- "${cur#*=}"))
		return
		;;
	oob=*)
		COMPREPLY=($(compgen -P "${prefix}oob=" -W 'preserve detect ignore' -- "${cur#*=}"))
		return
		;;
	clone=*)
		COMPREPLY=($(compgen -P "${prefix}clone=" -W 'auto off' -- "${cur#*=}"))
		return
		;;
	*=*)
		return	# a number or a size: nothing to offer
		;;
	esac
	COMPREPLY=($(compgen -P "$prefix" -W '
		store= max_preserve= snapshot= oob= clone= timeout=
		readahead_kb= max_threads= fd_cache= snapdir= nonempty
		allow_other allow_root default_permissions ro rw
		auto_unmount fsname= subtype= max_idle_threads= clone_fd
		' -- "$cur"))
	# A value follows options ending in '=': no space after them.
	if [[ ${#COMPREPLY[@]} -eq 1 && ${COMPREPLY[0]} == *= ]]; then
		compopt -o nospace 2>/dev/null
	fi
}

# The names of MNT's views, one a line, as `stablefs snapshot --list MNT
# --json` gives them ($1: the stablefs the user runs, $2: MNT). Only names
# that need neither JSON unescaping nor shell quoting; a hung mount costs
# at most 2 s.
_stablefs_view_names()
{
	local json mnt=${2/#\~/$HOME}
	json=$(timeout 2 "$1" snapshot --list "$mnt" --json 2>/dev/null) || return
	grep -oE '"name"[[:space:]]*:[[:space:]]*"[[:alnum:]._@:+,-]+"' <<<"$json" |
		sed -E 's/^"name"[[:space:]]*:[[:space:]]*"//; s/"$//'
}

# stablefs snapshot ...: flags, MNT (a directory), then for --delete the
# name of one of MNT's views (taking one needs a new name: nothing to offer).
_stablefs_snapshot()
{
	local i mnt action=take nargs=0 dashdash=
	for ((i = 2; i < cword; i++)); do
		if [[ -z $dashdash && ${words[i]} == -* ]]; then
			case ${words[i]} in
			--) dashdash=1 ;;
			--list) action=list ;;
			--delete) action=delete ;;
			esac
		elif ((nargs++ == 0)); then
			mnt=${words[i]}
		fi
	done
	if [[ -z $dashdash && $cur == -* ]]; then
		case $action in
		list) COMPREPLY=($(compgen -W '--json' -- "$cur")) ;;
		take) ((nargs == 0)) &&
			COMPREPLY=($(compgen -W '--list --delete --help' -- "$cur")) ;;
		esac
		return
	fi
	local IFS=$'\n'
	if ((nargs == 0)); then
		COMPREPLY=($(compgen -d -- "$cur"))
	elif ((nargs == 1)) && [[ $action == delete ]]; then
		COMPREPLY=($(compgen -W "$(_stablefs_view_names "${words[0]}" "$mnt")" -- "$cur"))
	fi
}

_stablefs_complete()
{
	local i nargs

	# stablefs stats MNT [--json]
	if ((cword >= 2)) && [[ ${words[1]} == stats ]]; then
		if [[ $cur == -* ]]; then
			COMPREPLY=($(compgen -W '--json' -- "$cur"))
		else
			local IFS=$'\n'
			COMPREPLY=($(compgen -d -- "$cur"))
		fi
		return
	fi
	if ((cword >= 2)) && [[ ${words[1]} == snapshot ]]; then
		_stablefs_snapshot
		return
	fi

	if [[ $prev == -o ]]; then
		_stablefs_o_values "$cur"
		return
	fi
	case $cur in
	-o?*)	# -ofoo=bar written together
		_stablefs_o_values "${cur#-o}"
		local j
		for j in "${!COMPREPLY[@]}"; do
			COMPREPLY[j]=-o${COMPREPLY[j]}
		done
		return
		;;
	-*)
		COMPREPLY=($(compgen -W '-o -f -d -s -h --help -V --version' -- "$cur"))
		return
		;;
	esac

	# Words before this one that are not options: SRC, then MNT.
	nargs=0
	for ((i = 1; i < cword; i++)); do
		case ${words[i]} in
		-o) ((i++)) ;;
		-*) ;;
		*) ((nargs++)) ;;
		esac
	done
	if ((cword == 1)); then
		local IFS=$'\n'
		COMPREPLY=($(compgen -W $'stats\nsnapshot' -- "$cur") $(compgen -d -- "$cur"))
	elif ((nargs < 2)); then
		local IFS=$'\n'
		COMPREPLY=($(compgen -d -- "$cur"))
	fi
}

_stablefs()
{
	# Words split on blanks only (COMP_WORDS is also split at '=' and ':').
	local line=${COMP_LINE:0:COMP_POINT} cur prev cword head h c j
	local -a words
	read -ra words <<<"$line"
	[[ ${#words[@]} -eq 0 || $line == *[[:space:]] ]] && words+=("")
	cword=$((${#words[@]} - 1))
	cur=${words[cword]}
	prev=
	((cword > 0)) && prev=${words[cword - 1]}
	COMPREPLY=()
	_stablefs_complete
	# Readline replaces only what follows the last '=' or ':' of the word
	# when COMP_WORDBREAKS holds them (it does by default).
	head=
	for c in = :; do
		[[ $COMP_WORDBREAKS == *"$c"* && $cur == *"$c"* ]] || continue
		h=${cur%"${cur##*"$c"}"}
		((${#h} > ${#head})) && head=$h
	done
	if [[ -n $head ]]; then
		for j in "${!COMPREPLY[@]}"; do
			COMPREPLY[j]=${COMPREPLY[j]#"$head"}
		done
	fi
} &&
complete -F _stablefs stablefs

# ex: filetype=sh
