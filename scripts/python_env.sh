# Sourced by the entry scripts: sets $python (the repository's .venv when present, else python3) and
# the environment every command needs. Expects $repo_root, the repository folder.
python=python3
[[ -x "$repo_root/.venv/bin/python" ]] && python="$repo_root/.venv/bin/python"
export PYTHONPATH="$repo_root${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"  # nothing is downloaded at run time
export NO_ALBUMENTATIONS_UPDATE=1             # albumentations would check for updates on import
