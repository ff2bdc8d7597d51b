# Progressive Distillation: one job per halving round. Round N (student steps) reads the
# round-2N student as its teacher (the trained teacher when 2N = pd.n0), so rebuilding
# round k leaves every earlier round untouched.


use rule _train as distill_pd with:
    input:
        unpack(train_input("pd")),
    output:
        model="results/students/pd/default/nfe{nfe}/model.pt",
        meta="results/students/pd/default/nfe{nfe}/model.pt.meta.json",
        curve="results/students/pd/default/nfe{nfe}/fid_curve.json",
    log:
        "results/logs/distill/pd/default/nfe{nfe}.log",
    wildcard_constraints:
        nfe=r"\d+",
    # the rounds form a serial chain: start it as soon as the teacher exists
    priority: 50
