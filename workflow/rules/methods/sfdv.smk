# SFD-v: one step-conditioned student for every NFE, trained on the per-NFE SFD caches.


if config["sfdv"]["enabled"]:

    use rule _train as distill_sfdv with:
        input:
            unpack(train_input("sfdv")),
        output:
            model=naming.student_model("sfdv"),
            meta=f"{naming.student_model('sfdv')}.meta.json",
            curve=naming.student_model("sfdv").replace("model.pt", "fid_curve.json"),
        log:
            "results/logs/distill/sfdv/default.log",
        # the longest job of the main target: before the PD chain (50) and the others (40)
        priority: 52
