"""Request signing and replay protection: btauth/1 (validator <-> miner), the API's
hotkey scheme, nonce stores. A service: imports foundations only."""
