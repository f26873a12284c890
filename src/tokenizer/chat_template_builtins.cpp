// Built-ins of the chat-template interpreter (operators, access, filters, tests, methods,
// globals). Semantics follow Python and Jinja 3.1 as transformers runs them: string lengths,
// indices and slices count code points, str.strip() strips Unicode whitespace, upper/lower use
// full Unicode case mapping (ICU), tojson is json.dumps(ensure_ascii=False). Anything not listed
// here is an error naming it, so an unknown construct never renders a wrong prompt.
#include "tokenizer/chat_template_builtins.h"

#include <unicode/locid.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>

#include <cmath>
#include <cstdint>
#include <stdexcept>

#include <fmt/format.h>

#include "core/utf8.h"

namespace billion::jinja {
namespace {

using std::invalid_argument;

std::vector<uint32_t> code_points(const std::string& s) {
  std::vector<uint32_t> out;
  size_t pos = 0;
  while (pos < s.size()) out.push_back(decode_utf8(s, pos));
  return out;
}

std::string from_code_points(const std::vector<uint32_t>& cps, size_t begin = 0, size_t end = SIZE_MAX) {
  std::string out;
  for (size_t k = begin; k < cps.size() && k < end; ++k) append_utf8(out, cps[k]);
  return out;
}

// Python str.isspace().
bool py_space(uint32_t c) {
  return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
}

// Python str.strip/lstrip/rstrip; `chars` undefined/None = whitespace.
std::string py_strip(const std::string& s, const Value& chars, bool left, bool right) {
  auto cps = code_points(s);
  std::vector<uint32_t> set;
  const bool whitespace = chars.is_undefined() || chars.is_none();
  if (!whitespace) {
    if (!chars.is_string()) throw invalid_argument("strip arg must be None or str");
    set = code_points(chars.s);
  }
  auto strip_it = [&](uint32_t c) {
    if (whitespace) return py_space(c);
    for (uint32_t x : set)
      if (x == c) return true;
    return false;
  };
  size_t b = 0, e = cps.size();
  if (left) while (b < e && strip_it(cps[b])) ++b;
  if (right) while (e > b && strip_it(cps[e - 1])) --e;
  return from_code_points(cps, b, e);
}

std::string case_map(const std::string& s, bool upper) {
  auto u = icu::UnicodeString::fromUTF8(s);
  if (upper) u.toUpper(icu::Locale::getRoot());
  else u.toLower(icu::Locale::getRoot());
  std::string out;
  u.toUTF8String(out);
  return out;
}

// Python str.title(): a cased character after an uncased one starts a word.
std::string py_title(const std::string& s) {
  std::string out;
  bool prev_cased = false;
  for (uint32_t c : code_points(s)) {
    const bool cased = u_hasBinaryProperty(static_cast<UChar32>(c), UCHAR_CASED);
    append_utf8(out, static_cast<uint32_t>(prev_cased ? u_tolower(static_cast<UChar32>(c)) : u_totitle(static_cast<UChar32>(c))));
    prev_cased = cased;
  }
  return out;
}

std::string py_capitalize(const std::string& s) {
  auto cps = code_points(s);
  if (cps.empty()) return s;
  std::string out;
  append_utf8(out, static_cast<uint32_t>(u_totitle(static_cast<UChar32>(cps[0]))));
  return out + case_map(from_code_points(cps, 1), false);
}

std::string py_replace(const std::string& s, const std::string& old, const std::string& with, int64_t count) {
  std::string out;
  if (old.empty()) {  // Python inserts `with` around every character
    auto cps = code_points(s);
    int64_t done = 0;
    for (size_t k = 0; k <= cps.size(); ++k) {
      if (count < 0 || done < count) {
        out += with;
        ++done;
      }
      if (k < cps.size()) append_utf8(out, cps[k]);
    }
    return out;
  }
  size_t pos = 0;
  int64_t done = 0;
  for (;;) {
    size_t found = s.find(old, pos);
    if (found == std::string::npos || (count >= 0 && done >= count)) break;
    out.append(s, pos, found - pos);
    out += with;
    pos = found + old.size();
    ++done;
  }
  return out + s.substr(pos);
}

// Python str.split(sep=None, maxsplit=-1).
Value py_split(const std::string& s, const Value& sep, int64_t maxsplit) {
  Value out = Value::new_list();
  if (sep.is_none() || sep.is_undefined()) {
    auto cps = code_points(s);
    size_t k = 0;
    int64_t splits = 0;
    while (k < cps.size()) {
      while (k < cps.size() && py_space(cps[k])) ++k;
      if (k >= cps.size()) break;
      if (maxsplit >= 0 && splits >= maxsplit) {
        size_t e = cps.size();
        while (e > k && py_space(cps[e - 1])) --e;
        out.list->push_back(Value::string(from_code_points(cps, k, e)));
        break;
      }
      size_t b = k;
      while (k < cps.size() && !py_space(cps[k])) ++k;
      out.list->push_back(Value::string(from_code_points(cps, b, k)));
      ++splits;
    }
    return out;
  }
  if (!sep.is_string()) throw invalid_argument("split: separator must be a string");
  if (sep.s.empty()) throw invalid_argument("split: empty separator");
  size_t pos = 0;
  int64_t splits = 0;
  for (;;) {
    size_t found = s.find(sep.s, pos);
    if (found == std::string::npos || (maxsplit >= 0 && splits >= maxsplit)) break;
    out.list->push_back(Value::string(s.substr(pos, found - pos)));
    pos = found + sep.s.size();
    ++splits;
  }
  out.list->push_back(Value::string(s.substr(pos)));
  return out;
}

// Argument `index` by position, or by keyword `name`; Undefined when absent.
Value arg(const Args& a, size_t index, const char* name) {
  if (index < a.positional.size()) return a.positional[index];
  for (const auto& [k, v] : a.keyword)
    if (k == name) return v;
  return Value::undefined();
}

int64_t int_arg(const Args& a, size_t index, const char* name, int64_t fallback) {
  Value v = arg(a, index, name);
  if (v.is_undefined() || v.is_none()) return fallback;
  if (v.type != Value::Type::Int && v.type != Value::Type::Bool) {
    throw invalid_argument(fmt::format("argument {} must be an integer, not {}", name, type_name(v)));
  }
  return v.type == Value::Type::Bool ? v.b : v.i;
}

std::string str_arg(const Args& a, size_t index, const char* name) {
  Value v = arg(a, index, name);
  if (!v.is_string()) throw invalid_argument(fmt::format("argument {} must be a string, not {}", name, type_name(v)));
  return v.s;
}

Value method(std::function<Value(Args&)> fn) { return Value::function(std::move(fn)); }

// Python str.format with {} / {0} / {name} fields and no format specs.
std::string py_format(const std::string& fmt_text, const Args& a) {
  std::string out;
  size_t auto_index = 0;
  for (size_t k = 0; k < fmt_text.size(); ++k) {
    char c = fmt_text[k];
    if (c == '{' && k + 1 < fmt_text.size() && fmt_text[k + 1] == '{') { out += '{'; ++k; continue; }
    if (c == '}' && k + 1 < fmt_text.size() && fmt_text[k + 1] == '}') { out += '}'; ++k; continue; }
    if (c != '{') { out += c; continue; }
    size_t close = fmt_text.find('}', k);
    if (close == std::string::npos) throw invalid_argument("format: unmatched '{'");
    std::string field = fmt_text.substr(k + 1, close - k - 1);
    if (field.find_first_of(":!.[") != std::string::npos) {
      throw invalid_argument("unsupported: format spec/conversion in str.format field {" + field + "}");
    }
    Value v;
    if (field.empty()) v = arg(a, auto_index++, "");
    else if (std::isdigit(static_cast<unsigned char>(field[0]))) v = arg(a, std::stoul(field), "");
    else v = arg(a, SIZE_MAX, field.c_str());
    if (v.is_undefined()) throw invalid_argument("format: missing argument for {" + field + "}");
    out += to_str(v);
    k = close;
  }
  return out;
}

Value string_method(const std::string& s, const std::string& name) {
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    return method([s, name](Args& a) {
      return Value::string(py_strip(s, arg(a, 0, "chars"), name != "rstrip", name != "lstrip"));
    });
  }
  if (name == "startswith" || name == "endswith") {
    return method([s, name](Args& a) {
      Value p = arg(a, 0, "prefix");
      ValueList options = p.is_list() ? *p.list : ValueList{p};
      for (const auto& o : options) {
        if (!o.is_string()) throw invalid_argument(name + " takes a string or a tuple of strings");
        if (name == "startswith" ? s.starts_with(o.s) : s.ends_with(o.s)) return Value::boolean(true);
      }
      return Value::boolean(false);
    });
  }
  if (name == "split") {
    return method([s](Args& a) { return py_split(s, arg(a, 0, "sep"), int_arg(a, 1, "maxsplit", -1)); });
  }
  if (name == "upper" || name == "lower") {
    return method([s, name](Args&) { return Value::string(case_map(s, name == "upper")); });
  }
  if (name == "title") return method([s](Args&) { return Value::string(py_title(s)); });
  if (name == "capitalize") return method([s](Args&) { return Value::string(py_capitalize(s)); });
  if (name == "replace") {
    return method([s](Args& a) {
      return Value::string(py_replace(s, str_arg(a, 0, "old"), str_arg(a, 1, "new"), int_arg(a, 2, "count", -1)));
    });
  }
  if (name == "format") return method([s](Args& a) { return Value::string(py_format(s, a)); });
  if (name == "join") {
    return method([s](Args& a) {
      std::string out;
      bool first = true;
      for (const auto& x : iterate(arg(a, 0, "iterable"))) {
        if (!x.is_string()) throw invalid_argument("str.join: items must be strings");
        out += (first ? "" : s) + x.s;
        first = false;
      }
      return Value::string(out);
    });
  }
  if (name == "find" || name == "count") {
    return method([s, name](Args& a) {
      const std::string sub = str_arg(a, 0, "sub");
      if (name == "count") {
        if (sub.empty()) return Value::integer(static_cast<int64_t>(code_points(s).size()) + 1);
        int64_t n = 0;
        for (size_t p = s.find(sub); p != std::string::npos; p = s.find(sub, p + sub.size())) ++n;
        return Value::integer(n);
      }
      size_t p = s.find(sub);
      return Value::integer(p == std::string::npos ? -1 : static_cast<int64_t>(code_points(s.substr(0, p)).size()));
    });
  }
  return Value::undefined("str." + name);
}

Value dict_method(const Value& d, const std::string& name) {
  if (name == "items" || name == "keys" || name == "values") {
    return method([d, name](Args&) {
      Value out = Value::new_list();
      for (const auto& [k, v] : d.dict->items) {
        if (name == "items") out.list->push_back(Value::new_list({Value::string(k), v}));
        else out.list->push_back(name == "keys" ? Value::string(k) : v);
      }
      return out;
    });
  }
  if (name == "get") {
    return method([d](Args& a) {
      Value key = arg(a, 0, "key");
      const Value* found = key.is_string() ? d.dict->find(key.s) : nullptr;
      if (found) return *found;
      Value fallback = arg(a, 1, "default");
      return fallback.is_undefined() ? Value::none() : fallback;
    });
  }
  return Value::undefined();
}

// Python slice indices for a sequence of `n` items.
std::vector<size_t> slice_indices(int64_t n, const Value& start, const Value& stop, const Value& step) {
  auto get = [](const Value& v, int64_t fallback) {
    if (v.is_none() || v.is_undefined()) return fallback;
    if (v.type != Value::Type::Int) throw invalid_argument("slice indices must be integers or None");
    return v.i;
  };
  const int64_t st = get(step, 1);
  if (st == 0) throw invalid_argument("slice step cannot be zero");
  auto clamp = [&](int64_t x, int64_t lo, int64_t hi) {
    if (x < 0) x += n;
    return std::max(lo, std::min(hi, x));
  };
  int64_t b, e;
  if (st > 0) {
    b = start.is_none() || start.is_undefined() ? 0 : clamp(get(start, 0), 0, n);
    e = stop.is_none() || stop.is_undefined() ? n : clamp(get(stop, n), 0, n);
  } else {
    b = start.is_none() || start.is_undefined() ? n - 1 : clamp(get(start, 0), -1, n - 1);
    e = stop.is_none() || stop.is_undefined() ? -1 : clamp(get(stop, 0), -1, n - 1);
  }
  std::vector<size_t> out;
  for (int64_t k = b; st > 0 ? k < e : k > e; k += st) out.push_back(static_cast<size_t>(k));
  return out;
}

Value number_result(double x, bool both_int) {
  return both_int ? Value::integer(static_cast<int64_t>(x)) : Value::number(x);
}

bool is_int_like(const Value& v) { return v.type == Value::Type::Int || v.type == Value::Type::Bool; }
int64_t int_of(const Value& v) { return v.type == Value::Type::Bool ? v.b : v.i; }

[[noreturn]] void bad_operands(const std::string& op, const Value& a, const Value& b) {
  if (a.is_undefined() || b.is_undefined()) {
    const Value& u = a.is_undefined() ? a : b;
    throw invalid_argument(fmt::format("'{}' is undefined", u.s.empty() ? "value" : u.s));
  }
  throw invalid_argument(fmt::format("unsupported operand types for {}: {} and {}", op, type_name(a), type_name(b)));
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

// Dotted attribute path as selectattr/map/join take it ("function.name").
Value attribute_path(const Value& item, const std::string& path) {
  Value v = item;
  size_t start = 0;
  for (;;) {
    size_t dot = path.find('.', start);
    std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    v = std::all_of(part.begin(), part.end(), ::isdigit) && !part.empty()
            ? get_item(v, Value::integer(std::stoll(part)))
            : get_attribute(v, part);
    if (dot == std::string::npos) return v;
    start = dot + 1;
  }
}

// Jinja's indent filter. Jinja splits text + "\n" with splitlines(), which equals splitting the
// text itself at each line break (here \n, \r\n and \r).
std::string indent(const std::string& s, const std::string& pad, bool first, bool blank) {
  std::vector<std::string> lines(1);
  for (size_t k = 0; k < s.size(); ++k) {
    if (s[k] == '\n' || s[k] == '\r') {
      if (s[k] == '\r' && k + 1 < s.size() && s[k + 1] == '\n') ++k;
      lines.emplace_back();
    } else {
      lines.back() += s[k];
    }
  }
  std::string out = lines[0];
  for (size_t k = 1; k < lines.size(); ++k) out += "\n" + ((blank || !lines[k].empty()) ? pad : "") + lines[k];
  return first ? pad + out : out;
}

}  // namespace

Value get_attribute(const Value& obj, const std::string& name) {
  if (obj.is_string()) return string_method(obj.s, name);
  if (obj.is_dict()) {
    if (!obj.is_namespace) {
      Value m = dict_method(obj, name);
      if (!m.is_undefined()) return m;
    }
    const Value* v = obj.dict->find(name);
    return v ? *v : Value::undefined(name);
  }
  return Value::undefined(name);
}

Value get_item(const Value& obj, const Value& key) {
  if (obj.is_dict()) {
    if (!key.is_string()) return Value::undefined();
    const Value* v = obj.dict->find(key.s);
    return v ? *v : Value::undefined(key.s);
  }
  if ((obj.is_list() || obj.is_string()) && is_int_like(key)) {
    if (obj.is_list()) {
      int64_t n = static_cast<int64_t>(obj.list->size()), k = int_of(key);
      if (k < 0) k += n;
      return k >= 0 && k < n ? (*obj.list)[static_cast<size_t>(k)] : Value::undefined("index " + to_str(key));
    }
    auto cps = code_points(obj.s);
    int64_t n = static_cast<int64_t>(cps.size()), k = int_of(key);
    if (k < 0) k += n;
    if (k < 0 || k >= n) return Value::undefined("index " + to_str(key));
    return Value::string(from_code_points(cps, static_cast<size_t>(k), static_cast<size_t>(k) + 1));
  }
  if (key.is_string()) return get_attribute(obj, key.s);
  return Value::undefined();
}

Value slice(const Value& obj, const Value& start, const Value& stop, const Value& step) {
  if (obj.is_list()) {
    Value out = Value::new_list();
    for (size_t k : slice_indices(static_cast<int64_t>(obj.list->size()), start, stop, step)) out.list->push_back((*obj.list)[k]);
    return out;
  }
  if (obj.is_string()) {
    auto cps = code_points(obj.s);
    std::string out;
    for (size_t k : slice_indices(static_cast<int64_t>(cps.size()), start, stop, step)) append_utf8(out, cps[k]);
    return Value::string(out);
  }
  throw invalid_argument(fmt::format("cannot slice a {}", type_name(obj)));
}

ValueList iterate(const Value& v) {
  switch (v.type) {
    case Value::Type::Undefined: return {};
    case Value::Type::List: return *v.list;
    case Value::Type::Dict: {
      if (v.is_namespace) break;
      ValueList keys;
      for (const auto& [k, x] : v.dict->items) keys.push_back(Value::string(k));
      return keys;
    }
    case Value::Type::String: {
      ValueList chars;
      for (uint32_t c : code_points(v.s)) {
        std::string s;
        append_utf8(s, c);
        chars.push_back(Value::string(s));
      }
      return chars;
    }
    default: break;
  }
  throw invalid_argument(fmt::format("{} is not iterable", type_name(v)));
}

Value binary_op(const std::string& op, const Value& a, const Value& b, bool negated) {
  if (op == "==") return Value::boolean(equals(a, b));
  if (op == "!=") return Value::boolean(!equals(a, b));
  if (op == "<" || op == "<=" || op == ">" || op == ">=") {
    if (a.is_undefined() || b.is_undefined()) bad_operands(op, a, b);
    int c = compare(a, b);
    bool r = op == "<" ? c < 0 : op == "<=" ? c <= 0 : op == ">" ? c > 0 : c >= 0;
    return Value::boolean(r);
  }
  if (op == "~") return Value::string(to_str(a) + to_str(b));
  if (op == "in") {
    bool r;
    if (b.is_string()) {
      if (!a.is_string()) throw invalid_argument(fmt::format("'in <string>' requires a string, not {}", type_name(a)));
      r = b.s.find(a.s) != std::string::npos;
    } else if (b.is_list()) {
      r = false;
      for (const auto& x : *b.list) r = r || equals(a, x);
    } else if (b.is_dict()) {
      r = a.is_string() && b.dict->find(a.s) != nullptr;
    } else {
      bad_operands("in", a, b);
    }
    return Value::boolean(negated ? !r : r);
  }
  if (op == "+") {
    if (a.is_string() && b.is_string()) return Value::string(a.s + b.s);
    if (a.is_list() && b.is_list()) {
      ValueList items = *a.list;
      items.insert(items.end(), b.list->begin(), b.list->end());
      return Value::new_list(std::move(items));
    }
  }
  if (op == "*" && (a.is_string() || a.is_list() || b.is_string() || b.is_list())) {
    const Value& seq = a.is_string() || a.is_list() ? a : b;
    const Value& times = &seq == &a ? b : a;
    if (!is_int_like(times)) bad_operands(op, a, b);
    int64_t n = std::max<int64_t>(0, int_of(times));
    if (seq.is_string()) {
      std::string out;
      for (int64_t k = 0; k < n; ++k) out += seq.s;
      return Value::string(out);
    }
    ValueList items;
    for (int64_t k = 0; k < n; ++k) items.insert(items.end(), seq.list->begin(), seq.list->end());
    return Value::new_list(std::move(items));
  }
  if (!a.is_number() || !b.is_number()) bad_operands(op, a, b);
  const bool ints = is_int_like(a) && is_int_like(b);
  const double x = a.as_double(), y = b.as_double();
  // Python's integers have no bound; ours are 64-bit, so a result that does not fit is an error
  // naming the operation rather than undefined behaviour (the fuzzer found {{ 38**28382 }}).
  auto overflow = [&op]() -> Value { throw invalid_argument("integer overflow in " + op + " (integers are 64-bit here)"); };
  if (ints && (op == "+" || op == "-" || op == "*")) {
    int64_t r = 0;
    const bool over = op == "+"   ? __builtin_add_overflow(int_of(a), int_of(b), &r)
                      : op == "-" ? __builtin_sub_overflow(int_of(a), int_of(b), &r)
                                  : __builtin_mul_overflow(int_of(a), int_of(b), &r);
    return over ? overflow() : Value::integer(r);
  }
  if (op == "+") return Value::number(x + y);
  if (op == "-") return Value::number(x - y);
  if (op == "*") return Value::number(x * y);
  if (op == "/" || op == "//" || op == "%") {
    if (y == 0) throw invalid_argument("division by zero");
    if (op == "/") return Value::number(x / y);
    if (ints) {  // Python floors toward negative infinity
      if (int_of(a) == INT64_MIN && int_of(b) == -1) return op == "//" ? overflow() : Value::integer(0);  // -2^63 // -1
      int64_t p = int_of(a), q = int_of(b), d = p / q, r = p % q;
      if (r != 0 && ((r < 0) != (q < 0))) { --d; r += q; }
      return Value::integer(op == "//" ? d : r);
    }
    double d = std::floor(x / y);
    return op == "//" ? Value::number(d) : Value::number(x - d * y);
  }
  if (op == "**") {
    if (ints && int_of(b) >= 0) {
      const int64_t base = int_of(a);
      int64_t e = int_of(b);
      // 0, 1 and -1 stay small for any exponent; any other base overflows within 63 steps.
      if (base == 0 || base == 1) return Value::integer(e == 0 ? 1 : base);
      if (base == -1) return Value::integer(e % 2 ? -1 : 1);
      int64_t result = 1;
      for (; e > 0; --e)
        if (__builtin_mul_overflow(result, base, &result)) return overflow();
      return Value::integer(result);
    }
    return number_result(std::pow(x, y), false);
  }
  throw invalid_argument("unsupported operator " + op);
}

Value apply_filter(const std::string& name, const Value& v, Args& a) {
  if (name == "trim") return Value::string(py_strip(to_str(v), arg(a, 0, "chars"), true, true));
  if (name == "length" || name == "count") {
    if (v.is_undefined()) return Value::integer(0);
    if (v.is_string()) return Value::integer(static_cast<int64_t>(code_points(v.s).size()));
    if (v.is_list()) return Value::integer(static_cast<int64_t>(v.list->size()));
    if (v.is_dict() && !v.is_namespace) return Value::integer(static_cast<int64_t>(v.dict->items.size()));
    throw invalid_argument(fmt::format("object of type {} has no len()", type_name(v)));
  }
  if (name == "upper" || name == "lower") return Value::string(case_map(to_str(v), name == "upper"));
  if (name == "title") return Value::string(py_title(to_str(v)));
  if (name == "capitalize") return Value::string(py_capitalize(to_str(v)));
  if (name == "tojson") {
    JsonOptions o;
    Value ind = arg(a, 1, "indent"), seps = arg(a, 2, "separators"), sort = arg(a, 3, "sort_keys");
    if (truthy(arg(a, 0, "ensure_ascii"))) throw invalid_argument("unsupported: tojson(ensure_ascii=true)");
    if (ind.is_string()) throw invalid_argument("unsupported: tojson with a string indent");
    if (!ind.is_undefined() && !ind.is_none()) o.indent = static_cast<int>(int_of(ind));
    if (seps.is_list() && seps.list->size() == 2 && (*seps.list)[0].is_string() && (*seps.list)[1].is_string()) {
      o.item_separator = (*seps.list)[0].s;
      o.key_separator = (*seps.list)[1].s;
    } else if (!seps.is_undefined() && !seps.is_none()) {
      throw invalid_argument("tojson separators must be two strings");
    }
    o.sort_keys = truthy(sort);
    return Value::string(to_json(v, o));
  }
  if (name == "default" || name == "d") {
    Value fallback = arg(a, 0, "default_value");
    bool use = v.is_undefined() || (truthy(arg(a, 1, "boolean")) && !truthy(v));
    return use ? (fallback.is_undefined() ? Value::string("") : fallback) : v;
  }
  if (name == "first" || name == "last") {
    ValueList items = iterate(v);
    if (items.empty()) return Value::undefined(name);
    return name == "first" ? items.front() : items.back();
  }
  if (name == "join") {
    Value sep = arg(a, 0, "d"), attr = arg(a, 1, "attribute");
    std::string out;
    bool first = true;
    for (const auto& x : iterate(v)) {
      out += (first ? "" : to_str(sep)) + to_str(attr.is_undefined() || attr.is_none() ? x : attribute_path(x, to_str(attr)));
      first = false;
    }
    return Value::string(out);
  }
  if (name == "replace") {
    return Value::string(py_replace(to_str(v), to_str(arg(a, 0, "old")), to_str(arg(a, 1, "new")),
                                    int_arg(a, 2, "count", -1)));
  }
  if (name == "selectattr" || name == "rejectattr" || name == "select" || name == "reject") {
    const bool by_attr = name.ends_with("attr");
    const bool keep_true = name.starts_with("select");
    const size_t test_pos = by_attr ? 1 : 0;
    Value out = Value::new_list();
    for (const auto& item : iterate(v)) {
      Value subject = by_attr ? attribute_path(item, str_arg(a, 0, "attribute")) : item;
      bool r;
      if (a.positional.size() <= test_pos) {
        r = truthy(subject);
      } else {
        Args rest;
        rest.positional.assign(a.positional.begin() + static_cast<long>(test_pos) + 1, a.positional.end());
        r = apply_test(str_arg(a, test_pos, "test"), subject, rest);
      }
      if (r == keep_true) out.list->push_back(item);
    }
    return out;
  }
  if (name == "map") {
    Value out = Value::new_list();
    Value attr = arg(a, SIZE_MAX, "attribute");
    for (const auto& item : iterate(v)) {
      if (!attr.is_undefined()) {
        Value x = attribute_path(item, to_str(attr));
        Value fallback = arg(a, SIZE_MAX, "default");
        out.list->push_back(x.is_undefined() && !fallback.is_undefined() ? fallback : x);
      } else {
        Args rest;
        if (a.positional.empty()) throw invalid_argument("map needs a filter name or attribute=");
        rest.positional.assign(a.positional.begin() + 1, a.positional.end());
        out.list->push_back(apply_filter(str_arg(a, 0, "filter"), item, rest));
      }
    }
    return out;
  }
  if (name == "items") {
    if (v.is_undefined()) return Value::new_list();
    if (!v.is_dict() || v.is_namespace) throw invalid_argument(fmt::format("items filter needs a dict, not {}", type_name(v)));
    Args none;
    return (*dict_method(v, "items").fn)(none);
  }
  if (name == "list") return Value::new_list(iterate(v));
  if (name == "string") return Value::string(to_str(v));
  if (name == "int" || name == "float") {
    Value fallback = arg(a, 0, "default");
    double x = 0;
    bool ok = true;
    if (v.is_number()) {
      x = v.as_double();
    } else if (v.is_string()) {
      try {
        size_t used = 0;
        x = std::stod(v.s, &used);
        ok = used == v.s.size();
      } catch (const std::exception&) {
        ok = false;
      }
    } else {
      ok = false;
    }
    if (!ok) return fallback.is_undefined() ? (name == "int" ? Value::integer(0) : Value::number(0)) : fallback;
    return name == "int" ? Value::integer(static_cast<int64_t>(std::trunc(x))) : Value::number(x);
  }
  if (name == "abs") {
    if (is_int_like(v)) return Value::integer(std::llabs(int_of(v)));
    if (v.type == Value::Type::Float) return Value::number(std::fabs(v.f));
    throw invalid_argument(fmt::format("bad operand type for abs(): {}", type_name(v)));
  }
  if (name == "reverse") {
    if (v.is_string()) return slice(v, Value::none(), Value::none(), Value::integer(-1));
    ValueList items = iterate(v);
    return Value::new_list(ValueList(items.rbegin(), items.rend()));
  }
  if (name == "safe") return v;
  if (name == "escape" || name == "e") return Value::string(html_escape(to_str(v)));
  if (name == "indent") {
    Value width = arg(a, 0, "width");
    std::string pad = width.is_string() ? width.s : std::string(static_cast<size_t>(int_arg(a, 0, "width", 4)), ' ');
    return Value::string(indent(to_str(v), pad, truthy(arg(a, 1, "first")), truthy(arg(a, 2, "blank"))));
  }
  throw invalid_argument(fmt::format("unsupported filter '{}'", name));
}

bool apply_test(const std::string& name, const Value& v, Args& a) {
  using T = Value::Type;
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "boolean") return v.type == T::Bool;
  if (name == "true") return v.type == T::Bool && v.b;
  if (name == "false") return v.type == T::Bool && !v.b;
  if (name == "integer") return v.type == T::Int;
  if (name == "float") return v.type == T::Float;
  if (name == "number") return v.is_number();
  if (name == "string") return v.is_string();
  if (name == "mapping") return v.is_dict() && !v.is_namespace;
  if (name == "iterable") return v.is_undefined() || v.is_list() || v.is_string() || (v.is_dict() && !v.is_namespace);
  if (name == "sequence") return v.is_undefined() || v.is_list() || v.is_string() || (v.is_dict() && !v.is_namespace);
  if (name == "callable") return v.type == T::Function;
  if (name == "even" || name == "odd") {
    if (!is_int_like(v)) throw invalid_argument(fmt::format("test {} needs an integer, not {}", name, type_name(v)));
    return (int_of(v) % 2 == 0) == (name == "even");
  }
  if (name == "divisibleby") {
    int64_t n = int_arg(a, 0, "num", 0);
    if (n == 0 || !is_int_like(v)) throw invalid_argument("divisibleby needs integers and a non-zero divisor");
    return int_of(v) % n == 0;
  }
  if (name == "lower" || name == "upper") {
    if (!v.is_string()) return false;
    return v.s == case_map(v.s, name == "upper") && v.s != case_map(v.s, name != "upper");
  }
  if (name == "sameas") {
    Value o = arg(a, 0, "other");
    if (v.type != o.type) return false;
    if (v.is_list()) return v.list == o.list;
    if (v.is_dict()) return v.dict == o.dict;
    return equals(v, o);
  }
  static const std::unordered_map<std::string, std::string> comparisons = {
      {"eq", "=="}, {"equalto", "=="}, {"==", "=="}, {"ne", "!="}, {"!=", "!="}, {"lt", "<"},
      {"lessthan", "<"}, {"<", "<"}, {"le", "<="}, {"<=", "<="}, {"gt", ">"}, {"greaterthan", ">"},
      {">", ">"}, {"ge", ">="}, {">=", ">="}};
  if (auto it = comparisons.find(name); it != comparisons.end()) {
    return truthy(binary_op(it->second, v, arg(a, 0, "other"), false));
  }
  if (name == "in") return truthy(binary_op("in", v, arg(a, 0, "seq"), false));
  throw invalid_argument(fmt::format("unsupported test '{}'", name));
}

void install_globals(std::unordered_map<std::string, Value>& g, const std::optional<std::tm>& now) {
  g["raise_exception"] = Value::function([](Args& a) -> Value {
    throw invalid_argument(to_str(arg(a, 0, "message")));
  });
  g["strftime_now"] = Value::function([now](Args& a) {
    const std::string format = str_arg(a, 0, "format");
    std::tm t{};
    if (now) {
      t = *now;
    } else {
      std::time_t clock = std::time(nullptr);
      localtime_r(&clock, &t);
    }
    char buffer[256];
    size_t n = std::strftime(buffer, sizeof buffer, format.c_str(), &t);
    if (n == 0 && !format.empty()) throw invalid_argument("strftime_now: format gives no output or is too long");
    return Value::string(std::string(buffer, n));
  });
  auto dict_from_args = [](Args& a, bool ns) {
    Value d = Value::new_dict();
    d.is_namespace = ns;
    for (const auto& p : a.positional) {
      if (!p.is_dict()) throw invalid_argument("namespace()/dict() take a dict or keyword arguments");
      for (const auto& [k, v] : p.dict->items) d.dict->set(k, v);
    }
    for (const auto& [k, v] : a.keyword) d.dict->set(k, v);
    return d;
  };
  g["namespace"] = Value::function([dict_from_args](Args& a) { return dict_from_args(a, true); });
  g["dict"] = Value::function([dict_from_args](Args& a) { return dict_from_args(a, false); });
  g["range"] = Value::function([](Args& a) {
    int64_t start = 0, stop, step = 1;
    if (a.positional.size() == 1) {
      stop = int_arg(a, 0, "stop", 0);
    } else {
      start = int_arg(a, 0, "start", 0);
      stop = int_arg(a, 1, "stop", 0);
      step = int_arg(a, 2, "step", 1);
    }
    if (step == 0) throw invalid_argument("range() step must not be zero");
    Value out = Value::new_list();
    for (int64_t k = start; step > 0 ? k < stop : k > stop; k += step) {
      out.list->push_back(Value::integer(k));
      if (out.list->size() > 1000000) throw invalid_argument("range() too long");
    }
    return out;
  });
}

}  // namespace billion::jinja
