// Internals of the chat-template interpreter shared by chat_template*.cpp: the value model
// (Python-like: lists and dicts are shared by reference, so namespace attributes can be assigned
// from inside loops), the syntax tree, and the parser entry point. Not a public header.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace billion::jinja {

struct Value;
using ValueList = std::vector<Value>;

// Insertion-ordered like a Python dict (tojson and items() keep the order).
struct ValueDict {
  std::vector<std::pair<std::string, Value>> items;
  const Value* find(const std::string& key) const;
  void set(const std::string& key, Value value);
};

struct Args {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
};
using Function = std::function<Value(Args&)>;

struct Value {
  enum class Type { Undefined, None, Bool, Int, Float, String, List, Dict, Function };
  Type type = Type::Undefined;
  bool b = false;
  int64_t i = 0;
  double f = 0;
  std::string s;  // String; for Undefined, the name that was looked up (for error messages)
  std::shared_ptr<ValueList> list;
  std::shared_ptr<ValueDict> dict;
  std::shared_ptr<Function> fn;
  bool is_namespace = false;  // a namespace(): the only dict `set x.attr = ...` may modify
  bool is_tuple = false;      // a (a, b) literal: a list that prints as a tuple

  static Value undefined(std::string name = {}) { Value v; v.s = std::move(name); return v; }
  static Value none() { Value v; v.type = Type::None; return v; }
  static Value boolean(bool x) { Value v; v.type = Type::Bool; v.b = x; return v; }
  static Value integer(int64_t x) { Value v; v.type = Type::Int; v.i = x; return v; }
  static Value number(double x) { Value v; v.type = Type::Float; v.f = x; return v; }
  static Value string(std::string x) { Value v; v.type = Type::String; v.s = std::move(x); return v; }
  static Value new_list(ValueList items = {});
  static Value new_dict();
  static Value function(Function fn);

  bool is_undefined() const { return type == Type::Undefined; }
  bool is_none() const { return type == Type::None; }
  bool is_string() const { return type == Type::String; }
  bool is_number() const { return type == Type::Int || type == Type::Float || type == Type::Bool; }
  bool is_list() const { return type == Type::List; }
  bool is_dict() const { return type == Type::Dict; }
  double as_double() const { return type == Type::Float ? f : static_cast<double>(type == Type::Bool ? b : i); }
};

// Lists, dicts and functions are shared by reference, so a template can build a cycle
// (`{% set ns.self = ns %}`) that reference counting never frees. While a ContainerArena is alive
// on this thread, every container made is recorded, and the arena's destructor empties the ones
// still alive, which breaks any cycle when a render ends (normally or by an error).
class ContainerArena {
 public:
  ContainerArena();
  ~ContainerArena();
  ContainerArena(const ContainerArena&) = delete;
  ContainerArena& operator=(const ContainerArena&) = delete;
  static void record(const Value& v);

 private:
  std::vector<std::weak_ptr<ValueList>> lists_;
  std::vector<std::weak_ptr<ValueDict>> dicts_;
  std::vector<std::weak_ptr<Function>> functions_;
  ContainerArena* outer_;
};

const char* type_name(const Value& v);
bool truthy(const Value& v);
// Python str() of the value (what {{ }} prints): None → "None", True → "True", lists as repr.
std::string to_str(const Value& v);
// Python repr(): strings quoted the way Python quotes them.
std::string repr(const Value& v);
bool equals(const Value& a, const Value& b);
// <0, 0, >0; throws std::invalid_argument for types Python cannot order.
int compare(const Value& a, const Value& b);

struct JsonOptions {
  int indent = -1;  // -1: single line
  std::string item_separator;  // empty: Python's default (", " or "," with indent)
  std::string key_separator = ": ";
  bool sort_keys = false;
};
// Python json.dumps(value, ensure_ascii=False, ...) as transformers' tojson filter calls it.
std::string to_json(const Value& v, const JsonOptions& options);
Value from_json(const nlohmann::ordered_json& j);

// ---- Syntax tree -------------------------------------------------------------------------------

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum class Kind {
    Literal, Name, ListLit, DictLit, Attr, Index, Slice, Call, Filter, Test, Unary, Binary,
    And, Or, Not, Cond
  };
  Kind kind;
  int line = 0;
  Value literal;    // Literal
  std::string name; // Name, Attr, Filter, Test; operator for Unary/Binary
  bool negated = false;  // "is not", "not in"; ListLit: a tuple
  // Operands: Attr/Filter/Test/Call/Index: args[0] is the object; Slice: object, start, stop,
  // step (null when omitted); Cond: value, condition, else (null when omitted); DictLit: pairs.
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
};

struct Node;
using NodePtr = std::unique_ptr<Node>;
using NodeList = std::vector<NodePtr>;

struct Node {
  enum class Kind { Text, Output, If, For, Set, SetBlock, Macro, Break, Continue, Block };
  Kind kind;
  int line = 0;
  std::string text;                  // Text; Set/SetBlock/Macro: target name
  std::string attr;                  // Set: "ns.attr" assignment when not empty
  std::vector<std::string> targets;  // For: loop variables (several = unpacking); Macro: params
  std::vector<ExprPtr> defaults;     // Macro: default per parameter (null = required)
  ExprPtr expr;                      // Output, Set value, For iterable
  ExprPtr filter;                    // For ... if cond
  std::vector<std::pair<ExprPtr, NodeList>> branches;  // If: (condition or null for else, body)
  NodeList body;                     // For, SetBlock, Macro, Block
  NodeList else_body;                // For ... else
  bool recursive = false;
};

// Parses a template (Jinja lexing rules as transformers configures them: trim_blocks,
// lstrip_blocks, single trailing newline dropped). Errors name `source_name` and the line.
NodeList parse_template(const std::string& source, const std::string& source_name);

}  // namespace billion::jinja
