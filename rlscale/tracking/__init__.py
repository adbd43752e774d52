"""Experiment tracking. ``mlflow_tracker`` logs a comparison to MLflow; MLflow is imported only when it runs."""
