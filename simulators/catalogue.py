"""Reference data the generator draws from: class codes, cover owners, departments, lamp ratings.

Codes follow GB/T 47678.5-2026 (DOMAIN.md); correct them here, in one place.
"""

from dataclasses import dataclass
from enum import StrEnum


class Department(StrEnum):
    """Departments that own assets and receive their cases."""

    LIGHTING = "市政照明管理处"
    MUCK = "渣土管理办公室"
    ENFORCEMENT = "城管执法大队"
    WATER = "水务集团"
    DRAINAGE = "排水管理处"
    POWER = "供电公司"
    GAS = "燃气公司"
    TELECOM = "通信公司"
    HEAT = "热力公司"
    POLICE = "公安局"
    PARKING = "停车管理公司"


class RoadClass(StrEnum):
    """Road class of a street; decides lamp rating and cover traffic load."""

    MAIN = "main"
    SECONDARY = "secondary"
    BRANCH = "branch"


LAMP_CLASS_CODE = "01037"
CABINET_CLASS_CODE = "01060"
PARKING_LOT_CLASS_CODE = "02001"
PARKING_STREET_CLASS_CODE = "02003"


@dataclass(frozen=True, slots=True)
class CoverOwner:
    """A manhole cover owner type with its class code, department and relative frequency."""

    cover_type: str
    class_code: str
    name_zh: str
    department: Department
    weight: int


COVER_OWNERS: tuple[CoverOwner, ...] = (
    CoverOwner("water_supply", "01001", "供水井盖", Department.WATER, 12),
    CoverOwner("sewage", "01002", "污水井盖", Department.DRAINAGE, 20),
    CoverOwner("storm_water", "01003", "雨水井盖", Department.DRAINAGE, 20),
    CoverOwner("power", "01005", "电力井盖", Department.POWER, 12),
    CoverOwner("street_lighting", "01006", "路灯井盖", Department.LIGHTING, 5),
    CoverOwner("telecom", "01007", "通信井盖", Department.TELECOM, 12),
    CoverOwner("cable_tv", "01008", "有线电视井盖", Department.TELECOM, 3),
    CoverOwner("network", "01009", "网络井盖", Department.TELECOM, 3),
    CoverOwner("heating", "01010", "热力井盖", Department.HEAT, 2),
    CoverOwner("gas", "01011", "燃气井盖", Department.GAS, 6),
    CoverOwner("police", "01012", "公安井盖", Department.POLICE, 1),
    CoverOwner("reclaimed_water", "01019", "中水井盖", Department.WATER, 2),
    CoverOwner("unknown", "01023", "不明井盖", Department.ENFORCEMENT, 2),
)


@dataclass(frozen=True, slots=True)
class LampModel:
    """A lamp type and rating used on one road class."""

    lamp_type: str
    rated_power_w: int
    power_factor: float


LAMP_MODELS: dict[RoadClass, tuple[LampModel, LampModel]] = {
    # (LED, high-pressure sodium) per road class
    RoadClass.MAIN: (LampModel("LED", 200, 0.96), LampModel("HPS", 250, 0.85)),
    RoadClass.SECONDARY: (LampModel("LED", 150, 0.96), LampModel("HPS", 150, 0.85)),
    RoadClass.BRANCH: (LampModel("LED", 90, 0.95), LampModel("HPS", 100, 0.85)),
}
LED_SHARE = 0.85

TRUCK_COMPANIES: tuple[str, ...] = (
    "苏州市吴中区宏达渣土运输有限公司",
    "苏州市顺通土方工程有限公司",
    "苏州市金城建筑垃圾清运有限公司",
    "苏州市畅达运输有限公司",
)

PLATE_PREFIX = "苏E"
