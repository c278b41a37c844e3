"""Pure computation for the recommender: encoder runtime, interest state, transfer, ranking.

Nothing in this package imports Kafka; everything here is testable without a broker.
"""
