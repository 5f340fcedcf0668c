"""Repositories of the messaging domain, one module per collection.

conversations.py, messages.py (sending.py holds its send path), receipts.py and
reactions.py; participants.py holds the participant check they share.
"""

from caas_data.repositories.saas.conversations import ConversationRepository, ConversationSummary
from caas_data.repositories.saas.messages import MessageRepository
from caas_data.repositories.saas.reactions import ReactionCount, ReactionRepository
from caas_data.repositories.saas.receipts import ReadReceiptRepository
from caas_data.repositories.saas.sending import UNKNOWN_SENDER

__all__ = [
    "UNKNOWN_SENDER",
    "ConversationRepository",
    "ConversationSummary",
    "MessageRepository",
    "ReactionCount",
    "ReactionRepository",
    "ReadReceiptRepository",
]
