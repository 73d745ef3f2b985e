"""Roles: the catalogue, candidates and proposals (read a snapshot), and role commands (build change sets)."""
