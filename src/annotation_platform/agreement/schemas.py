from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, model_validator

from annotation_platform.core.schemas import Id, InputModel, ReadModel, TypeSlug

MeasureKind = Literal["clustering", "categorical"]
GoldSource = Literal["majority", "annotator"]
GOLD = "gold"


class AnnotatorRead(BaseModel):
    username: str
    user_id: Id | None = Field(description="Null for the gold set.")
    items: int = Field(description="Items this annotator labelled with this type.")


class PairRead(BaseModel):
    annotators: list[str] = Field(
        description="The two usernames; the second is the reference of the asymmetric measures. `gold` names the "
        "gold set, always second."
    )
    items: int = Field(description="Items both labelled: every figure of the pair rests on these only.")
    metrics: dict[str, float | None] = Field(
        description="Fractions in 0..1 (kappa and ARI down to -1), variation of information in bits; null when "
        "undefined for these items (see docs/agreement.md)."
    )


class GroupRead(BaseModel):
    annotators: int = Field(description="How many annotators (the gold set excluded).")
    items: int = Field(description="Items with at least two labels: the units these figures rest on.")
    metrics: dict[str, float | None]


class AgreementRead(BaseModel):
    """Agreement between every pair of annotators (and each against the gold set, when there is one)."""

    container_id: Id | None = Field(description="Null for a project-wide report.")
    type: str
    kind: MeasureKind = Field(description="`clustering` (threads) or `categorical` measures.")
    window: int | None = Field(description="k of local agreement (clustering only).")
    items: int = Field(description="Items labelled by at least one annotator.")
    annotators: list[AnnotatorRead]
    pairs: list[PairRead]
    overall: GroupRead | None = Field(description="Measures over all annotators at once (categorical only).")
    containers: int = Field(default=1, description="Containers the report covers.")
    computed_at: datetime


class LabelRead(BaseModel):
    annotator: str
    label: str = Field(description="The label as written (a thread id, a category).")
    aligned: str | None = Field(
        default=None,
        description="Clustering only: the reference annotator's thread this annotator's thread is matched with "
        "(best one-to-one matching); null when it matches none.",
    )


class ContextItemRead(BaseModel):
    item_id: Id
    external_id: str
    sequence: int
    content: str
    labels: list[LabelRead]


class ItemLabelsRead(ContextItemRead):
    """An item with every annotator's label, and the items around it."""

    before: list[ContextItemRead] = Field(description="The items just before, in order.")
    after: list[ContextItemRead] = Field(description="The items just after, in order.")


class GoldCreate(InputModel):
    type: TypeSlug = Field(examples=["thread"])
    source: GoldSource = Field(
        description="`annotator`: copy one annotator's labels; `majority`: the label most annotators gave, ties "
        "left open."
    )
    annotator: str | None = Field(
        default=None,
        max_length=320,
        description="Username of the annotator to start from (`source=annotator`).",
        examples=["ada"],
    )

    @model_validator(mode="after")
    def _annotator_with_its_source(self) -> GoldCreate:
        if (self.source == "annotator") != (self.annotator is not None):
            raise ValueError("give `annotator` exactly when `source` is `annotator`")
        return self


class GoldRead(ReadModel):
    container_id: Id
    type: str
    source: GoldSource | None = Field(description="How the gold set was started (null when only read).")
    gold_items: int = Field(description="Items with a gold annotation.")
    open_items: int = Field(description="Labelled items without one yet (ties of a majority vote, and so on).")
