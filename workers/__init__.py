"""The Celery workers: `celery -A workers.app worker` runs the tasks, `celery -A workers.app beat` schedules them.

Tasks take ids, open their own sessions and call a service of `annotation_platform`; no business logic here.
"""
