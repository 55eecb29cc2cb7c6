"""The scheduler process: deadlines in the database → APScheduler timers, behind a leader lock."""
