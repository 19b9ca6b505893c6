"""What a meeting-room PC does with nobody there: the schedule (cron, systemd, launchd, Task
Scheduler) and the upload spool that sends results to the collector.
"""
