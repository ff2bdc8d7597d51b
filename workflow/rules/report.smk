# Tables: FIDs from the FID JSONs, fine-tuning wall time from the students' metadata.


rule tables:
    input:
        fid=all_fid_files() + pd_fid_files(),
        floor="results/fid/floor.json",
        o2mkd_fid=o2mkd_fid_files(),
        o2mkd_profile="results/o2mkd/profile.json",
    output:
        directory("results/tables"),
    log:
        "results/logs/tables.log",
    conda:
        CONDA_ENV
    shell:
        "diffdistill table --fid {input.fid} --floor {input.floor} --o2mkd-fid {input.o2mkd_fid}"
        " --o2mkd-profile {input.o2mkd_profile} --out-dir {output} 2> {log}"
