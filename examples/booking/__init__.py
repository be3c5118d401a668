"""A three-step booking run by a stateful saga: reserve stock, charge payment, ship.

``python -m examples.booking`` books four orders: one goes through, one is declined by the
payment service (the saga releases the stock and rejects the order), one finds too little
stock, and one waits for a payment that never comes until its deadline fires, in a worker
started after the first one stopped.
"""
