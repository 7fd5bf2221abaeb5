from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from tokenboard.kit.money import MoneyOut


class CreditEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: uuid.UUID
    kind: str
    amount: MoneyOut
    memo: str
    created_at: datetime


class Credits(BaseModel):
    model_config = ConfigDict(extra="forbid")

    balance: MoneyOut
    reserved: MoneyOut
    available: MoneyOut
    recent_entries: list[CreditEntry]
