"""Tests of the classification table, its lookups and the code validators."""

import pytest

from hub.cases.classification import (
    CaseClass,
    ClassificationError,
    ClassificationTable,
    ClassKind,
    MajorClass,
    anomaly_matter_of,
    load_classification,
    parse_classification_csv,
    parse_component_instance_id,
    parse_matter_code,
    parse_unit_grid_code,
)

TABLE = load_classification()


@pytest.mark.parametrize(
    ("code", "alias", "name_zh"),
    [
        ("01001", "0101", "供水井盖"),
        ("01003", "0103", "雨水井盖"),
        ("01019", "0127", "中水井盖"),
        ("01023", "0114", "不明井盖"),
        ("01037", "0118", "路灯"),
        ("01039", "0120", "景观灯"),
        ("02003", "0202", "停车计费设备"),
    ],
)
def test_component_lookup_both_ways(code: str, alias: str, name_zh: str) -> None:
    by_code = TABLE.get(ClassKind.COMPONENT, code)
    assert by_code.name_zh == name_zh
    assert by_code.alias_2007 == alias
    assert TABLE.by_alias_2007(ClassKind.COMPONENT, alias) is by_code
    assert TABLE.resolve(ClassKind.COMPONENT, alias) is by_code
    assert TABLE.resolve(ClassKind.COMPONENT, code) is by_code


def test_cabinet_has_no_2007_alias() -> None:
    cabinet = TABLE.get(ClassKind.COMPONENT, "01060")
    assert cabinet.alias_2007 is None
    assert cabinet.name_zh == "路灯配电箱"


@pytest.mark.parametrize(
    ("code", "name_zh", "major_zh"),
    [
        ("06011", "积存垃圾渣土", "市容环境类"),
        ("06014", "道路遗撒", "市容环境类"),
        ("08011", "渣土运输车辆未安装密闭装置", "施工管理类"),
        ("08012", "施工工地车轮夹带", "施工管理类"),
        ("09009", "机动车乱停放", "街面秩序类"),
    ],
)
def test_truck_matters(code: str, name_zh: str, major_zh: str) -> None:
    matter = TABLE.get(ClassKind.MATTER, code)
    assert matter.name_zh == name_zh
    assert TABLE.major(ClassKind.MATTER, matter.major).name_zh == major_zh


def test_component_faults_are_filed_under_the_components_own_code() -> None:
    lamp_fault = TABLE.get(ClassKind.MATTER, "01037")
    assert lamp_fault == TABLE.anomaly_matter("01037")
    assert lamp_fault.name_zh == "路灯异常"
    assert lamp_fault.kind is ClassKind.MATTER
    assert TABLE.major(ClassKind.MATTER, "01").name_zh == "市政公用设施异常"
    # every listed component of majors 01-05 has its mirrored matter
    for component in [c for c in TABLE if c.kind is ClassKind.COMPONENT]:
        assert (ClassKind.MATTER, component.code) in TABLE


def test_same_code_is_a_different_class_per_kind() -> None:
    assert TABLE.get(ClassKind.COMPONENT, "01037") != TABLE.get(ClassKind.MATTER, "01037")


def test_only_components_of_majors_01_to_05_mirror() -> None:
    with pytest.raises(ClassificationError, match="is not a component"):
        anomaly_matter_of(TABLE.get(ClassKind.MATTER, "06011"))
    odd = CaseClass(ClassKind.COMPONENT, "06001", None, "x", "x")
    with pytest.raises(ClassificationError, match="no mirrored"):
        anomaly_matter_of(odd)


@pytest.mark.parametrize(
    ("kind", "code", "message"),
    [
        (ClassKind.MATTER, "06999", "no matter class with 2026 code '06999'"),
        (ClassKind.COMPONENT, "06011", "no component class with 2026 code '06011'"),
        (ClassKind.COMPONENT, "0999", "no component class with 2007 code '0999'"),
    ],
)
def test_unknown_codes(kind: ClassKind, code: str, message: str) -> None:
    with pytest.raises(ClassificationError, match=message):
        TABLE.resolve(kind, code)


def test_table_refuses_duplicates_and_unknown_majors() -> None:
    majors = [MajorClass(ClassKind.COMPONENT, "01", "市政公用设施", "utilities")]
    lamp = CaseClass(ClassKind.COMPONENT, "01037", "0118", "路灯", "lamp")
    with pytest.raises(ClassificationError, match="duplicate class"):
        ClassificationTable([lamp, lamp], [*majors, MajorClass(ClassKind.MATTER, "01", "a", "b")])
    with pytest.raises(ClassificationError, match="unknown major 01"):
        ClassificationTable([lamp], majors)  # the mirrored matter major is missing
    with pytest.raises(ClassificationError, match="duplicate 2007 alias"):
        parse_classification_csv(
            "kind,code,alias_2007,name_zh,name_en,alias_verified\n"
            "matter,06011,0601,a,a,false\nmatter,06014,0601,b,b,false\n",
            "kind,major,name_zh,name_en\nmatter,06,市容环境类,environment\n",
        )


def test_component_instance_ids() -> None:
    parsed = parse_component_instance_id("32010201037000123", TABLE)
    assert (parsed.county_code, parsed.class_code, parsed.serial) == ("320102", "01037", "000123")
    assert str(parsed) == "32010201037000123"
    legacy = parse_component_instance_id("3201020118000123", TABLE)
    assert legacy.class_code == "0118"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("3201020999000123", "no component class with 2007 code .0999."),
        ("320102010370001234", "17 ASCII digits"),
        ("99010201037000123", "no province '99'"),
        ("3201020103700012x", "17 ASCII digits"),
        ("32010206011000123", "no component class"),
        ("32010201000000123", "zero major or minor"),
    ],
)
def test_bad_component_instance_ids(text: str, message: str) -> None:
    with pytest.raises(ClassificationError, match=message):
        parse_component_instance_id(text, TABLE)


def test_matter_codes() -> None:
    parsed = parse_matter_code("32010206011", TABLE)
    assert (parsed.county_code, parsed.class_code) == ("320102", "06011")
    assert str(parsed) == "32010206011"
    with pytest.raises(ClassificationError, match="11 ASCII digits"):
        parse_matter_code("3201020601")
    with pytest.raises(ClassificationError, match="no matter class"):
        parse_matter_code("32010206099", TABLE)


def test_unit_grid_codes() -> None:
    grid = parse_unit_grid_code("320102001002003")
    assert (grid.county_code, grid.street_code, grid.community_code, grid.grid_seq) == (
        "320102",
        "001",
        "002",
        "003",
    )
    assert grid.community_prefix == "320102001002"
    assert str(grid) == "320102001002003"
    with pytest.raises(ClassificationError, match="15 ASCII digits"):
        parse_unit_grid_code("32010200100200")
    with pytest.raises(ClassificationError, match="zero grid part"):
        parse_unit_grid_code("320102001002000")
    with pytest.raises(ClassificationError, match="no province"):
        parse_unit_grid_code("000102001002003")
