#!/usr/bin/env bash
# tools/colab_venv.sh VENV MAIN_VENV: a fresh Colab-like environment for `make colab-check`.
# tools/colab_venv.sh --verify VENV: after the check, Colab's preinstalled stack is unchanged.
#
# Colab's runtime comes with torch, numpy, scipy, scikit-learn, matplotlib, pillow, tqdm and
# ipywidgets 7.7 preinstalled (versions below, as on Colab in 2026 except torch, which must be
# this machine's CPU wheel); dlbook is not. A notebook's first cell then runs
# `%pip install "dlbook[notebooks] @ ..."`, which must add dlbook and the chapters' oracles
# without upgrading any of these (a restart-forcing upgrade on Colab). The kernel "colab-like"
# is registered in MAIN_VENV so the notebook runner can start it.
set -euo pipefail
PRE=(torch==2.13.0 numpy==2.0.2 scipy==1.14.1 scikit-learn==1.6.1 matplotlib==3.10.0
     pillow==11.1.0 tqdm==4.67.1 ipywidgets==7.7.1 ipykernel==6.17.1 pyyaml==6.0.2)
if [ "${1:-}" = "--verify" ]; then
  venv=$2
  changed=0
  for req in "${PRE[@]}"; do
    name=${req%%==*}; want=${req##*==}
    have=$("$venv/bin/python" -m pip show "$name" 2>/dev/null | awk '/^Version:/ {print $2}')
    if [ "${have%%+*}" != "$want" ]; then echo "colab-check: $name changed: $want -> $have"; changed=1; fi
  done
  "$venv/bin/python" -c "import dlbook" || { echo "colab-check: dlbook was not installed by the first cell"; exit 1; }
  [ $changed = 0 ] && echo "colab-check: Colab's preinstalled stack is unchanged (${#PRE[@]} packages)"
  exit $changed
fi
venv=$1; main=$2
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip 2>&1 | grep -v "is ignored" || true
"$venv/bin/python" -m pip install --quiet "${PRE[@]}" 2>&1 | grep -v "is ignored" || true
"$venv/bin/python" -c "import torch, numpy, ipywidgets; assert ipywidgets.__version__.startswith('7.7')"
"$venv/bin/python" -m ipykernel install --prefix "$main" --name colab-like --display-name "Colab-like" >/dev/null
echo "colab-check: $venv ready (Colab's stack, no dlbook); kernel colab-like registered in $main"
