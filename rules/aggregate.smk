# Cheap jobs run on the submit node, not as cluster jobs.
localrules:
    all,
    aggregate,
    decay,


rule aggregate:
    input:
        **aggregate_inputs(),
    output:
        **aggregate_outputs(),
    params:
        slice=canonical_json(AGGREGATE),
        results=lambda wildcards, output: os.path.dirname(output.report),  # the results folder
    log:
        R("logs/aggregate.log"),
    conda:
        "../envs/blindspot.yaml"
    shell:
        # The summary table, any WARNING line and the report's path also go to the console, where the user looks.
        "blindspot aggregate --slice {params.slice:q} --results {params.results:q} --log {log:q}"
