"""What the training components share: the TaskConfig fields they hand to a TrainJob.

The pipeline sets GPUs, tolerations, node selector and volumes on a training task; with these
passthroughs the component receives them (``dsl.TaskConfig``) and gives them to the TrainJob's
nodes instead of its own pod (resources are not applied to the launcher pod). Env and volumes
apply to both: the launcher needs the workspace PVC too.
"""

from kfp import dsl

TRAINING_PASSTHROUGHS = [
    dsl.TaskConfigField.RESOURCES,
    dsl.TaskConfigField.KUBERNETES_TOLERATIONS,
    dsl.TaskConfigField.KUBERNETES_NODE_SELECTOR,
    dsl.TaskConfigField.KUBERNETES_AFFINITY,
    dsl.TaskConfigPassthrough(field=dsl.TaskConfigField.ENV, apply_to_task=True),
    dsl.TaskConfigPassthrough(field=dsl.TaskConfigField.KUBERNETES_VOLUMES, apply_to_task=True),
]
