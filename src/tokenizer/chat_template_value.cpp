// Values of the chat-template interpreter: Python semantics for truthiness, str()/repr(),
// equality and ordering, and json.dumps as transformers' tojson filter calls it, because chat
// templates are written (and their outputs checked) against Python Jinja.
#include <algorithm>
#include <cmath>
#include <stdexcept>

#include <fmt/format.h>

#include "core/utf8.h"
#include "tokenizer/chat_template_internal.h"

namespace billion::jinja {

const Value* ValueDict::find(const std::string& key) const {
  for (const auto& [k, v] : items)
    if (k == key) return &v;
  return nullptr;
}

void ValueDict::set(const std::string& key, Value value) {
  for (auto& [k, v] : items) {
    if (k == key) {
      v = std::move(value);
      return;
    }
  }
  items.emplace_back(key, std::move(value));
}

namespace {
thread_local ContainerArena* current_arena = nullptr;
}

ContainerArena::ContainerArena() : outer_(current_arena) { current_arena = this; }

ContainerArena::~ContainerArena() {
  current_arena = outer_;
  // Move the contents out before they are destroyed: destroying them may release other
  // containers of this arena, which must not happen while we are inside their clear().
  for (auto& weak : lists_)
    if (auto list = weak.lock()) ValueList dropped = std::move(*list);
  for (auto& weak : dicts_)
    if (auto dict = weak.lock()) auto dropped = std::move(dict->items);
  for (auto& weak : functions_)
    if (auto fn = weak.lock()) Function dropped = std::move(*fn);
}

void ContainerArena::record(const Value& v) {
  ContainerArena* arena = current_arena;
  if (arena == nullptr) return;
  if (v.list) arena->lists_.push_back(v.list);
  if (v.dict) arena->dicts_.push_back(v.dict);
  if (v.fn) arena->functions_.push_back(v.fn);
}

Value Value::new_list(ValueList items) {
  Value v;
  v.type = Type::List;
  v.list = std::make_shared<ValueList>(std::move(items));
  ContainerArena::record(v);
  return v;
}

Value Value::new_dict() {
  Value v;
  v.type = Type::Dict;
  v.dict = std::make_shared<ValueDict>();
  ContainerArena::record(v);
  return v;
}

Value Value::function(Function fn) {
  Value v;
  v.type = Type::Function;
  v.fn = std::make_shared<Function>(std::move(fn));
  ContainerArena::record(v);
  return v;
}

const char* type_name(const Value& v) {
  switch (v.type) {
    case Value::Type::Undefined: return "undefined";
    case Value::Type::None: return "none";
    case Value::Type::Bool: return "bool";
    case Value::Type::Int: return "int";
    case Value::Type::Float: return "float";
    case Value::Type::String: return "string";
    case Value::Type::List: return "list";
    case Value::Type::Dict: return v.is_namespace ? "namespace" : "dict";
    case Value::Type::Function: return "function";
  }
  return "?";
}

bool truthy(const Value& v) {
  switch (v.type) {
    case Value::Type::Undefined:
    case Value::Type::None: return false;
    case Value::Type::Bool: return v.b;
    case Value::Type::Int: return v.i != 0;
    case Value::Type::Float: return v.f != 0;
    case Value::Type::String: return !v.s.empty();
    case Value::Type::List: return !v.list->empty();
    case Value::Type::Dict: return v.is_namespace || !v.dict->items.empty();
    case Value::Type::Function: return true;
  }
  return false;
}

// Python repr(float): shortest round-trip digits, always with a '.' or exponent.
static std::string float_text(double x) {
  if (std::isnan(x)) return "nan";
  if (std::isinf(x)) return x > 0 ? "inf" : "-inf";
  std::string s = fmt::format("{}", x);
  if (s.find_first_of(".en") == std::string::npos) s += ".0";
  return s;
}

// Python's repr of a str: single quotes unless the text has ' and no ".
static std::string string_repr(const std::string& s) {
  const bool use_double = s.find('\'') != std::string::npos && s.find('"') == std::string::npos;
  const char q = use_double ? '"' : '\'';
  std::string out(1, q);
  for (unsigned char c : s) {
    if (c == '\\') out += "\\\\";
    else if (c == static_cast<unsigned char>(q)) out += std::string("\\") + q;
    else if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == '\t') out += "\\t";
    else if (c < 0x20 || c == 0x7f) out += fmt::format("\\x{:02x}", c);
    else out += static_cast<char>(c);
  }
  return out + q;
}

std::string repr(const Value& v) {
  switch (v.type) {
    case Value::Type::String: return string_repr(v.s);
    case Value::Type::List: {
      std::string out = v.is_tuple ? "(" : "[";
      for (size_t k = 0; k < v.list->size(); ++k) out += (k ? ", " : "") + repr((*v.list)[k]);
      if (v.is_tuple) return out + (v.list->size() == 1 ? ",)" : ")");
      return out + "]";
    }
    case Value::Type::Dict: {
      if (v.is_namespace) return "<Namespace>";
      std::string out = "{";
      bool first = true;
      for (const auto& [k, x] : v.dict->items) {
        out += (first ? "" : ", ") + string_repr(k) + ": " + repr(x);
        first = false;
      }
      return out + "}";
    }
    default: return to_str(v);
  }
}

std::string to_str(const Value& v) {
  switch (v.type) {
    case Value::Type::Undefined: return "";
    case Value::Type::None: return "None";
    case Value::Type::Bool: return v.b ? "True" : "False";
    case Value::Type::Int: return std::to_string(v.i);
    case Value::Type::Float: return float_text(v.f);
    case Value::Type::String: return v.s;
    case Value::Type::Function: return "<function>";
    default: return repr(v);
  }
}

bool equals(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.type == Value::Type::Float || b.type == Value::Type::Float) return a.as_double() == b.as_double();
    return (a.type == Value::Type::Bool ? a.b : a.i) == (b.type == Value::Type::Bool ? b.b : b.i);
  }
  if (a.type != b.type) return false;
  switch (a.type) {
    case Value::Type::Undefined:
    case Value::Type::None: return true;
    case Value::Type::String: return a.s == b.s;
    case Value::Type::List:
      if (a.list->size() != b.list->size()) return false;
      for (size_t k = 0; k < a.list->size(); ++k)
        if (!equals((*a.list)[k], (*b.list)[k])) return false;
      return true;
    case Value::Type::Dict:
      if (a.dict == b.dict) return true;
      if (a.dict->items.size() != b.dict->items.size()) return false;
      for (const auto& [k, x] : a.dict->items) {
        const Value* y = b.dict->find(k);
        if (!y || !equals(x, *y)) return false;
      }
      return true;
    case Value::Type::Function: return a.fn == b.fn;
    default: return false;
  }
}

int compare(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    double x = a.as_double(), y = b.as_double();
    return x < y ? -1 : (x > y ? 1 : 0);
  }
  if (a.is_string() && b.is_string()) return a.s < b.s ? -1 : (a.s > b.s ? 1 : 0);
  if (a.is_list() && b.is_list()) {
    for (size_t k = 0; k < a.list->size() && k < b.list->size(); ++k) {
      if (int c = compare((*a.list)[k], (*b.list)[k])) return c;
    }
    return a.list->size() < b.list->size() ? -1 : (a.list->size() > b.list->size() ? 1 : 0);
  }
  throw std::invalid_argument(fmt::format("cannot order {} and {}", type_name(a), type_name(b)));
}

// json.dumps string escaping with ensure_ascii=False: only quote, backslash and control bytes.
static void json_string(std::string& out, const std::string& s) {
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) out += fmt::format("\\u{:04x}", c);
        else out += static_cast<char>(c);
    }
  }
  out += '"';
}

static void json_value(std::string& out, const Value& v, const JsonOptions& o, int depth) {
  const std::string item_sep = !o.item_separator.empty() ? o.item_separator : (o.indent >= 0 ? "," : ", ");
  auto newline = [&](int d) {
    if (o.indent >= 0) out += "\n" + std::string(static_cast<size_t>(o.indent) * d, ' ');
  };
  switch (v.type) {
    case Value::Type::Undefined:
      throw std::invalid_argument("undefined value is not JSON serializable");
    case Value::Type::None: out += "null"; return;
    case Value::Type::Bool: out += v.b ? "true" : "false"; return;
    case Value::Type::Int: out += std::to_string(v.i); return;
    case Value::Type::Float:
      out += std::isnan(v.f) ? "NaN" : std::isinf(v.f) ? (v.f > 0 ? "Infinity" : "-Infinity") : float_text(v.f);
      return;
    case Value::Type::String: json_string(out, v.s); return;
    case Value::Type::Function: throw std::invalid_argument("a function is not JSON serializable");
    case Value::Type::List: {
      if (v.list->empty()) {
        out += "[]";
        return;
      }
      out += '[';
      for (size_t k = 0; k < v.list->size(); ++k) {
        if (k) out += item_sep;
        newline(depth + 1);
        json_value(out, (*v.list)[k], o, depth + 1);
      }
      newline(depth);
      out += ']';
      return;
    }
    case Value::Type::Dict: {
      if (v.is_namespace) throw std::invalid_argument("a namespace is not JSON serializable");
      if (v.dict->items.empty()) {
        out += "{}";
        return;
      }
      std::vector<const std::pair<std::string, Value>*> items;
      for (const auto& item : v.dict->items) items.push_back(&item);
      if (o.sort_keys) {
        std::stable_sort(items.begin(), items.end(), [](auto* a, auto* b) { return a->first < b->first; });
      }
      out += '{';
      for (size_t k = 0; k < items.size(); ++k) {
        if (k) out += item_sep;
        newline(depth + 1);
        json_string(out, items[k]->first);
        out += o.key_separator;
        json_value(out, items[k]->second, o, depth + 1);
      }
      newline(depth);
      out += '}';
      return;
    }
  }
}

std::string to_json(const Value& v, const JsonOptions& options) {
  std::string out;
  json_value(out, v, options, 0);
  return out;
}

Value from_json(const nlohmann::ordered_json& j) {
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null: return Value::none();
    case nlohmann::ordered_json::value_t::boolean: return Value::boolean(j.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer:
    case nlohmann::ordered_json::value_t::number_unsigned: return Value::integer(j.get<int64_t>());
    case nlohmann::ordered_json::value_t::number_float: return Value::number(j.get<double>());
    case nlohmann::ordered_json::value_t::string: return Value::string(j.get<std::string>());
    case nlohmann::ordered_json::value_t::array: {
      Value v = Value::new_list();
      for (const auto& x : j) v.list->push_back(from_json(x));
      return v;
    }
    case nlohmann::ordered_json::value_t::object: {
      Value v = Value::new_dict();
      for (const auto& [k, x] : j.items()) v.dict->set(k, from_json(x));
      return v;
    }
    default: throw std::invalid_argument("unsupported JSON value (binary or discarded)");
  }
}

}  // namespace billion::jinja
