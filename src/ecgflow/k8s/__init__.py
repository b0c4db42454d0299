"""Kubernetes side of ecgflow: API client setup and Kubeflow Trainer TrainJobs."""
