# SFD's second stage: the stage-1 student (Euler with AFS over sfd2.teacher_nfe + 2
# timestamps) teaches a 1-NFE student; its trajectories are cached like the teacher's
# (rule teacher_trajectories, source sfdnfe<teacher_nfe>).


if config["sfd2"]["enabled"]:

    rule distill_sfd2:
        priority: 40
        input:
            unpack(train_input("sfd2")),
        output:
            model=naming.student_model("sfd2", "default", 1),
            meta=f"{naming.student_model('sfd2', 'default', 1)}.meta.json",
        log:
            "results/logs/distill/sfd2/default/nfe1.log",
        params:
            args=train_args("sfd2"),
            launch=launch,
        threads: THREADS
        resources:
            mem_mb=4000,
            runtime=60,
            gpu=GPU,
        conda:
            CONDA_ENV
        shell:
            "{params.launch}diffdistill train sfd2 {params.args} --out {output.model} --threads {threads} 2> {log}"
