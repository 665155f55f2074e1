# Localisation: for each mutant the study's `localise:` selects (deltamut.localise.plan), where its effect
# starts and how it travels to the logits, read from both builds kernel by kernel on witness images that
# compare's per-image table picks. Runs where the device's infer jobs run, in an isolated child.


rule localise:
    input:
        unpack(localise_inputs),
    output:
        profile=paths.PROFILE,
        kernels=paths.KERNELS,
        nodes=paths.NODES,
        bundle=directory(paths.MUTANT_BUNDLE),
        plot=report(
            paths.GROWTH_PLOT,
            category="Localisation",
            labels={"model": "{model}", "mutant": "{mutant}", "device": "{device}"},
        ),
    params:
        pair=lambda wc: localise_pair(wc),
        rebuild=lambda wc: localise_rebuild(wc),
        settings=LOCALISE,
    threads: 1
    resources:
        slurm_partition=lambda wc: STUDY.placement(wc.device).partition,
        runtime=lambda wc: STUDY.placement(wc.device).runtime,
        mem_mb=lambda wc: STUDY.placement(wc.device).mem_mb,
    log:
        paths.log("localise", "model", "opt", "mutant", "device"),
    benchmark:
        paths.benchmark("localise", "model", "opt", "mutant", "device")
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/localise.py"


# Which steps of an optimisation make its build flip labels against the reference: bisection over the
# configuration's ordered steps (deltamut.localise.bisect), for the optimisations `localise.optimisations` names.
rule bisect:
    input:
        unpack(bisect_inputs),
    output:
        record=paths.BISECT,
        ir=directory(paths.BISECT_IR),
        bundle=directory(paths.BUNDLE),
        nodes=paths.BISECT_NODES,
    params:
        pair=lambda wc: {k: bisection(wc)[k] for k in ("a", "b")},
        spec=lambda wc: bisection(wc)["spec"],
        target=lambda wc: bisection(wc)["target"],
        settings=LOCALISE,
    threads: 1
    resources:
        slurm_partition=lambda wc: STUDY.placement(wc.device).partition,
        runtime=lambda wc: STUDY.placement(wc.device).runtime,
        mem_mb=lambda wc: STUDY.placement(wc.device).mem_mb,
    log:
        paths.log("bisect", "model", "opt", "device"),
    benchmark:
        paths.benchmark("bisect", "model", "opt", "device")
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/bisect.py"


# A device pair (a device's build against the baseline device's, which the job's CPU runs), kernel by kernel:
# each kernel of the device's build replayed on the baseline's inputs of that call, on the device itself (this
# CPU, the node's GPU, a board over RPC), so the kernel whose code differs is told from those that only carry
# the difference (deltamut.localise.stage.device_stage). Placed as the device's infer jobs are.
rule localise_device:
    input:
        unpack(localise_device_inputs),
    output:
        profile=paths.DEVICE_PROFILE,
        kernels=paths.DEVICE_KERNELS,
        plot=report(
            paths.DEVICE_GROWTH_PLOT,
            category="Localisation",
            labels={"model": "{model}", "device": "{device} against {baseline}"},
        ),
    params:
        pair=lambda wc: localise_device_pair(wc),
        device=lambda wc: localise_device_replay(wc),
        settings=LOCALISE,
    threads: 1
    resources:
        slurm_partition=lambda wc: STUDY.placement(wc.device).partition,
        gpu=lambda wc: STUDY.placement(wc.device).gpus,
        gpu_model=lambda wc: STUDY.placement(wc.device).gpu_model,
        runtime=lambda wc: STUDY.placement(wc.device).runtime,
        mem_mb=lambda wc: STUDY.placement(wc.device).mem_mb,
    log:
        paths.log("localise_device", "model", "opt", "mutant", "device", "baseline"),
    benchmark:
        paths.benchmark("localise_device", "model", "opt", "mutant", "device", "baseline")
    conda:
        device_env
    script:
        "../scripts/localise_device.py"
