# Tables: FIDs from the FID JSONs, fine-tuning wall time from the students' metadata.


rule tables:
    input:
        fid=all_fid_files(),
        floor="results/fid/floor.json",
    output:
        directory("results/tables"),
    log:
        "results/logs/tables.log",
    conda:
        CONDA_ENV
    shell:
        "{DD} table --fid {input.fid} --floor {input.floor} --out-dir {output} 2> {log}"
