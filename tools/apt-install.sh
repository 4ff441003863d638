#!/usr/bin/env bash
# Install the Debian packages listed in $1 (name=version per line) that are missing on this machine.
# A package already installed is left as it is; a missing one is installed at the listed version when
# the archive has it, else at the archive's version with a warning naming both versions.
set -euo pipefail
list=${1:-tools/apt-packages.txt}
missing=()
while read -r spec _; do
  [[ -z $spec || $spec == \#* ]] && continue
  name=${spec%%=*}
  dpkg-query -W -f='${Status}' "$name" 2>/dev/null | grep -q "ok installed" || missing+=("$spec")
done <"$list"
((${#missing[@]})) || exit 0
sudo=""; [[ $(id -u) == 0 ]] || sudo=sudo
echo "installing apt packages: ${missing[*]}"
$sudo apt-get update -qq
wanted=()
for spec in "${missing[@]}"; do
  name=${spec%%=*} version=${spec#*=}
  if apt-cache madison "$name" | awk -F'|' '{gsub(/ /,"",$2); print $2}' | grep -qxF "$version"; then
    wanted+=("$spec")
  else
    echo "warning: $name $version is no longer in the archive; installing $(apt-cache policy "$name" | awk '/Candidate/ {print $2}') (update $list)" >&2
    wanted+=("$name")
  fi
done
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${wanted[@]}"
