"""Budgets and limits: memory.py for one process, redis.py shared across replicas."""
