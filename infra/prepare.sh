# Sourced by the commands (demo, test, up, bench) with $root set: installs what is missing,
# starts this checkout's services and exports their endpoints.
"$root/infra/setup.sh"
"$root/infra/services.sh" start
# shellcheck disable=SC1091
source "$root/.local/env"
