"""Plimsoll keepers: long-running bots built on the SDK (web3.py only, no brownie)."""
