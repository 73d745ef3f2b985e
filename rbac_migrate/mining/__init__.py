"""Exact-cover role mining: propose the fewest roles that reproduce everyone's access exactly.

>>> result = mine_roles({"ann": {"mail", "vpn"}, "bob": {"mail", "vpn", "crm"}})
>>> sorted(sorted(role.grants) for role in result.roles)
[['crm'], ['mail', 'vpn']]
>>> verify_exact({"ann": {"mail", "vpn"}, "bob": {"mail", "vpn", "crm"}}, result)
[]
"""

from .miner import DEFAULT_EFFORT, mine_roles
from .pairs import read_pairs
from .result import MinedRole, MiningResult, verify_exact

__all__ = ["DEFAULT_EFFORT", "MinedRole", "MiningResult", "mine_roles", "read_pairs", "verify_exact"]
