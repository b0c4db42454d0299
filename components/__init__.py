"""KFP components: one lightweight component per ecgflow stage, one folder each.

``<category>/<name>/component.py`` holds the component, ``README.md`` its generated reference
and ``tests/`` its unit test (kubeflow/pipelines-components' layout).
"""
