#!/usr/bin/env bash
# The control of views_backup.sh: the same run backing up MNT itself, not
# a view, while the writers go on. MNT is the live tree, so its copies mix
# instants and the comparisons with the model must find differences: if
# they did not, views_backup.sh could not tell a view from the live tree,
# and its passing would mean nothing. Also smaller (SFS_VIEWS_FILES,
# default 1,000 here): differences appear within seconds.
# Usage: views_backup_control.sh views_backup.sh views_tree.py
set -u
script=$1 tree=$2
# tar alone: over the live tree rsync -aHAX can run for minutes while
# the writers keep adding files, and one tool's restore suffices here.
out=$(SFS_VIEWS_TARGET=mnt SFS_VIEWS_FILES=${SFS_VIEWS_FILES:-1000} \
      SFS_VIEWS_TOOLS=tar SFS_VIEWS_STEP_TIMEOUT=120 SFS_VIEWS_SRC_WRITERS=0 \
      bash "$script" "$tree" 2>&1)
rc=$?
echo "$out" | sed 's/^/# /' | tail -40
[ $rc -eq 77 ] && { echo "1..0 # SKIP $(echo "$out" | grep SKIP | head -1)"; exit 77; }
fail=0
# It must have got as far as comparing: a failure to set up proves nothing.
if ! echo "$out" | grep -q '^# control: backing up MNT'; then
	echo "not ok: the control run did not get to its backups (exit $rc)"
	exit 1
fi
if [ $rc -eq 0 ]; then
	echo "not ok: backing up the live MNT passed views_backup.sh's checks"
	fail=1
else
	echo "ok: backing up the live MNT fails views_backup.sh (exit $rc)"
fi
# tar's copy of it too (or tar said files changed as it read).
if echo "$out" | grep -Eq "^not ok: (tar's restore differs|tar-create: (warned|exit))"; then
	echo "ok: tar's copy of MNT is not the instant"
else
	echo "not ok: tar's copy of MNT passed as the instant"
	fail=1
fi
# The live tree itself differs from the model of the instant.
if echo "$out" | grep -q '^not ok: the view differs from the model'; then
	echo "ok: MNT differs from the model of the instant"
else
	echo "not ok: MNT was found equal to the model of the instant"
	fail=1
fi
exit $fail
