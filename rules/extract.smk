rule extract:
    input:
        **stage_inputs("extract"),
        **stage_weights("extract"),
    output:
        **stage_outputs("extract"),
    params:
        **stage_params("extract"),
    resources:
        **stage_resources("extract"),
    benchmark:
        stage_benchmark("extract")
    log:
        stage_log("extract"),
    wildcard_constraints:
        bench=WHOLE,  # a split benchmark runs as parts and a gather (below)
    conda:
        "../envs/blindspot.yaml"
    shell:
        cli("extract")


# A benchmark with `shards: N` (N > 1): N part jobs over disjoint item ranges, then the gather, which writes the
# output the unsplit job writes (blindspot.contracts.parts).
rule extract_part:
    input:
        **stage_inputs("extract"),
        **stage_weights("extract"),
    output:
        **part_outputs("extract"),
    params:
        **stage_params("extract"),
    resources:
        **stage_resources("extract"),
    benchmark:
        split_benchmark("extract", "part")
    log:
        split_log("extract", "part"),
    wildcard_constraints:
        bench=SPLIT,
    conda:
        "../envs/blindspot.yaml"
    shell:
        cli("extract", part=True)


rule extract_gather:
    input:
        **gather_inputs("extract"),
    output:
        **stage_outputs("extract"),
    params:
        **gather_params("extract"),
    resources:
        **stage_resources("extract", job="gather"),
    benchmark:
        split_benchmark("extract", "gather")
    log:
        split_log("extract", "gather"),
    wildcard_constraints:
        bench=SPLIT,
    conda:
        "../envs/blindspot.yaml"
    shell:
        gather_cli("extract")
