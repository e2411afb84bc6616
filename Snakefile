# blindspot: diagnose visual ignorance in vision-language models.
#
#   snakemake --cores 8 --resources gpu=2                      # a workstation, no profile needed
#   snakemake --workflow-profile workflow/profiles/local       # what `make demo` runs
#   snakemake --workflow-profile workflow/profiles/slurm       # a SLURM cluster
#
# The config (config/config.yaml unless --configfile names another) is validated before any job starts.
from snakemake.utils import min_version

min_version("9.0")


# The default config is read only when no --configfile is given: Snakemake would otherwise deep-merge a user's
# file into it, and a run would silently inherit the demo benchmarks.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


include: "rules/common.smk"
include: "rules/stage.smk"
include: "rules/render.smk"
include: "rules/predict.smk"
include: "rules/decay.smk"
include: "rules/extract.smk"
include: "rules/probe.smk"
include: "rules/swap.smk"
include: "rules/patch.smk"
include: "rules/lens.smk"
include: "rules/knockout.smk"
include: "rules/aggregate.smk"


rule all:
    default_target: True
    input:
        all_targets(),
