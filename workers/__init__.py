"""RQ jobs and the worker process that runs them."""
