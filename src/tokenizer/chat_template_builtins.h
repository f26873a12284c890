// Built-ins of the chat-template interpreter: operators, attribute/item access and slicing,
// filters, tests, string/dict methods and global functions, with Python semantics. Problems are
// thrown as std::invalid_argument; the evaluator turns them into billion::Error with the line.
#pragma once
#include <ctime>
#include <optional>
#include <string>
#include <unordered_map>

#include "tokenizer/chat_template_internal.h"

namespace billion::jinja {

Value get_attribute(const Value& obj, const std::string& name);
Value get_item(const Value& obj, const Value& key);
Value slice(const Value& obj, const Value& start, const Value& stop, const Value& step);
// The items a for loop visits: list items, dict keys, string characters.
ValueList iterate(const Value& v);
// + - * / // % ** ~ == != < <= > >= in ("not in" when negated).
Value binary_op(const std::string& op, const Value& a, const Value& b, bool negated);
Value apply_filter(const std::string& name, const Value& v, Args& args);
bool apply_test(const std::string& name, const Value& v, Args& args);
// raise_exception, strftime_now (formats `now`, or the current local time), namespace, dict,
// range.
void install_globals(std::unordered_map<std::string, Value>& globals, const std::optional<std::tm>& now);

}  // namespace billion::jinja
