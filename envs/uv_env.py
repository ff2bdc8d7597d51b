"""Print, as shell `export` lines, the index settings pip would use here (from
`pip config list`), in the environment variables uv reads instead: uv ignores pip's
configuration, which on some machines is the only place the CPU build of torch is found.
Used by envs/install.sh; nothing is written down."""
import shlex
import subprocess
import sys

UV_VARS = {"index-url": "UV_DEFAULT_INDEX", "extra-index-url": "UV_INDEX", "find-links": "UV_FIND_LINKS",
           "constraint": "UV_CONSTRAINT", "cert": "SSL_CERT_FILE"}


def settings() -> dict:
    out = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True).stdout
    conf = {}
    for line in out.splitlines():  # e.g. global.extra-index-url='file:///a file:///b'
        key, _, value = line.partition("=")
        conf[key.split(".")[-1]] = value.strip().strip("'\"")
    env = {var: conf[key] for key, var in UV_VARS.items() if conf.get(key)}
    # pip picks the best version across all its indexes; uv by default stops at the first
    # index that has the package at all
    env["UV_INDEX_STRATEGY"] = "unsafe-best-match"
    return env


if __name__ == "__main__":
    for var, value in settings().items():
        print(f"export {var}={shlex.quote(value)}")
