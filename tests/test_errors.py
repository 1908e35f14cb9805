"""service.errors: FastAPI's validation-error lists become one sentence that names each field."""

from __future__ import annotations

from service.errors import MAX_LISTED, validation_sentence


def test_form_field_named_with_the_value_given() -> None:
    sentence = validation_sentence([{"type": "float_parsing", "loc": ("body", "lat"), "input": "null",
                                     "msg": "Input should be a valid number, unable to parse string as a number"}],
                                   form=True)
    assert sentence == ("form field 'lat': input should be a valid number, unable to parse string as a number, "
                        "got 'null'")


def test_locations_missing_fields_and_bad_json() -> None:
    assert validation_sentence([{"type": "missing", "loc": ("body", "image"), "msg": "Field required"}],
                               form=True) == "form field 'image' is required"
    assert validation_sentence([{"type": "less_than_equal", "loc": ("query", "top_k"), "input": "51",
                                 "msg": "Input should be less than or equal to 50"}]) == \
        "query parameter 'top_k': input should be less than or equal to 50, got '51'"
    assert validation_sentence([{"type": "json_invalid", "loc": ("body", 0), "msg": "JSON decode error",
                                 "ctx": {"error": "Expecting value"}}]) == \
        "the request body is not valid JSON (Expecting value)"
    # a validator's own message (pydantic prefixes "Value error, ") is the message
    assert validation_sentence([{"type": "value_error", "loc": ("body", "name"), "input": "a/b",
                                 "msg": "Value error, a name must not contain '/'"}]) == \
        "body field 'name': a name must not contain '/', got 'a/b'"


def test_long_lists_and_inputs_are_cut() -> None:
    errors = [{"type": "string_too_long", "loc": ("body", f"f{i}"), "input": "x" * 500, "msg": "String too long"}
              for i in range(MAX_LISTED + 3)]
    sentence = validation_sentence(errors)
    assert sentence.endswith("and 3 more problems") and sentence.count("body field") == MAX_LISTED
    assert len(sentence) < 1000
    # uploaded files and other objects are never echoed back
    assert "UploadFile" not in validation_sentence([{"type": "x", "loc": ("body", "image"), "msg": "bad",
                                                      "input": {"filename": "UploadFile"}}])
