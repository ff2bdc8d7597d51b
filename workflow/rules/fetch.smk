# Downloads: the EDM teacher snapshot, the dataset archive, the Inception weights and
# clean-fid's reference statistics, each to the local path the config names. Local
# rules (cluster login nodes usually have the network, compute nodes often do not).
# Offline, each fails with one line naming the URL and the path to put the file at.
# A download is checked against the SHA-256 the config pins beside its URL before it
# takes its name. A file already in place is never fetched again.

from diffdistill.fetch import downloads

for _input in downloads(config):

    rule:
        name:
            f"fetch_{_input.name}"
        output:
            _input.path,
        log:
            f"results/logs/fetch/{_input.name}.log",
        localrule: True
        conda:
            CONDA_ENV
        params:
            url=_input.url,
            what=_input.what,
            sha=f"--sha256 {_input.sha256}" if _input.sha256 else "",
            sha_key=_input.sha256_key,
        shell:
            "diffdistill fetch --url {params.url} --out {output} --what '{params.what}' {params.sha}"
            " --sha256-key {params.sha_key} 2> {log}"
