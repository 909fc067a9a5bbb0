"""What several test folders share: the project's paths (project), tiny training setups (tiny), a copy
of the project in a temp git repo for real `dvc` runs (dvc_project), kills at named moments (killing),
the hostile-input corpus (corpus) and tasks for the worker-pool tests (worker_tasks)."""
