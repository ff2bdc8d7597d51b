# Consistency distillation and ECT's consistency tuning: one model per target (cd.targets)
# from the teacher, sampled at every NFE of cd.nfe (its rows override the recipe's NFE).


if config["cd"]["enabled"]:

    use rule _train as distill_cd with:
        input:
            unpack(train_input("cd")),
        output:
            model="results/students/cd/{target}/model.pt",
            meta="results/students/cd/{target}/model.pt.meta.json",
            curve="results/students/cd/{target}/fid_curve.json",
        log:
            "results/logs/distill/cd/{target}.log",
        wildcard_constraints:
            target="ct|cd",
        priority: 45
