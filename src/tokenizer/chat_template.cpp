// Chat-template evaluator: walks the tree from chat_template_parse.cpp with Python/Jinja
// semantics (scoping: only for-loops and macros open a scope, so `set` inside a loop does not
// leak and namespace() is the way out, as in Jinja). Globals are those transformers provides:
// raise_exception, strftime_now, namespace, dict, range. Filters, tests and methods are in
// chat_template_builtins.cpp; an unknown one is an Error naming it.
//
// Supported: {{ }}, {% if/elif/else %}, {% for %} (unpacking, "if" filter, else, loop.*,
// break/continue), {% set %} (names, ns.attr, block form), {% macro %}, {% generation %},
// comments, whitespace control, and the expression syntax of Jinja (literals, lists, dicts,
// attribute/index/slice access, calls with keyword arguments, filters, tests, all operators).
#include "tokenizer/chat_template.h"

#include <cmath>
#include <unordered_map>

#include "core/error.h"
#include "tokenizer/chat_template_builtins.h"
#include "tokenizer/chat_template_internal.h"

namespace billion {
namespace jinja {
namespace {

enum class Flow { Normal, Break, Continue };

class Renderer {
 public:
  Renderer(const std::string& source_name, std::unordered_map<std::string, Value> globals)
      : name_(source_name) {
    scopes_.push_back(std::move(globals));
  }

  Flow run(const NodeList& nodes, std::string& out) {
    for (const auto& n : nodes) {
      Flow f = exec(*n, out);
      if (f != Flow::Normal) return f;
    }
    return Flow::Normal;
  }

 private:
  [[noreturn]] void error(int line, const std::string& message) const {
    fail(name_ + ":" + std::to_string(line), "{}", message);
  }

  Value lookup(const std::string& name) const {
    for (auto it = scopes_.rbegin(); it != scopes_.rend(); ++it) {
      auto found = it->find(name);
      if (found != it->end()) return found->second;
    }
    return Value::undefined(name);
  }

  Flow exec(const Node& n, std::string& out) {
    switch (n.kind) {
      case Node::Kind::Text: out += n.text; return Flow::Normal;
      case Node::Kind::Output: {
        Value v = eval(*n.expr);
        out += to_str(v);
        return Flow::Normal;
      }
      case Node::Kind::If:
        for (const auto& [cond, body] : n.branches) {
          if (!cond || truthy(eval(*cond))) return run(body, out);
        }
        return Flow::Normal;
      case Node::Kind::For: return exec_for(n, out);
      case Node::Kind::Set: {
        Value v = eval(*n.expr);
        if (n.attr.empty()) {
          scopes_.back()[n.text] = std::move(v);
          return Flow::Normal;
        }
        Value target = lookup(n.text);
        if (!target.is_dict() || !target.is_namespace) {
          error(n.line, fmt::format("cannot assign attribute '{}' on '{}' ({}): only namespace() objects "
                                    "can be changed", n.attr, n.text, type_name(target)));
        }
        target.dict->set(n.attr, std::move(v));
        return Flow::Normal;
      }
      case Node::Kind::SetBlock: {
        std::string captured;
        run(n.body, captured);
        scopes_.back()[n.text] = Value::string(std::move(captured));
        return Flow::Normal;
      }
      case Node::Kind::Macro: scopes_.back()[n.text] = make_macro(n); return Flow::Normal;
      case Node::Kind::Break:
        if (loop_depth_ == 0) error(n.line, "break outside a for loop");
        return Flow::Break;
      case Node::Kind::Continue:
        if (loop_depth_ == 0) error(n.line, "continue outside a for loop");
        return Flow::Continue;
      case Node::Kind::Block: return run(n.body, out);
    }
    return Flow::Normal;
  }

  Flow exec_for(const Node& n, std::string& out) {
    Value iterable = eval(*n.expr);
    ValueList items;
    try {
      items = iterate(iterable);
    } catch (const std::invalid_argument& e) {
      error(n.line, e.what());
    }
    // With "if", loop.length and loop.index count only the items that pass.
    auto bind = [&](std::unordered_map<std::string, Value>& scope, const Value& item) {
      if (n.targets.size() == 1) {
        scope[n.targets[0]] = item;
        return;
      }
      ValueList parts = item.is_list() ? *item.list : ValueList{};
      if (parts.size() != n.targets.size()) {
        error(n.line, fmt::format("cannot unpack {} into {} loop variables", repr(item), n.targets.size()));
      }
      for (size_t k = 0; k < parts.size(); ++k) scope[n.targets[k]] = parts[k];
    };
    if (n.filter) {
      ValueList kept;
      for (const auto& item : items) {
        scopes_.emplace_back();
        bind(scopes_.back(), item);
        bool keep = truthy(eval(*n.filter));
        scopes_.pop_back();
        if (keep) kept.push_back(item);
      }
      items = std::move(kept);
    }
    if (items.empty()) return run(n.else_body, out);
    ++loop_depth_;
    const int64_t length = static_cast<int64_t>(items.size());
    for (int64_t k = 0; k < length; ++k) {
      scopes_.emplace_back();
      auto& scope = scopes_.back();
      bind(scope, items[k]);
      Value loop = Value::new_dict();
      loop.dict->set("index0", Value::integer(k));
      loop.dict->set("index", Value::integer(k + 1));
      loop.dict->set("revindex0", Value::integer(length - k - 1));
      loop.dict->set("revindex", Value::integer(length - k));
      loop.dict->set("first", Value::boolean(k == 0));
      loop.dict->set("last", Value::boolean(k == length - 1));
      loop.dict->set("length", Value::integer(length));
      loop.dict->set("previtem", k > 0 ? items[k - 1] : Value::undefined("loop.previtem"));
      loop.dict->set("nextitem", k + 1 < length ? items[k + 1] : Value::undefined("loop.nextitem"));
      loop.dict->set("cycle", Value::function([k](Args& a) {
        if (a.positional.empty()) throw std::invalid_argument("loop.cycle() needs at least one argument");
        return a.positional[static_cast<size_t>(k) % a.positional.size()];
      }));
      scope["loop"] = loop;
      Flow f = run(n.body, out);
      scopes_.pop_back();
      if (f == Flow::Break) break;
    }
    --loop_depth_;
    return Flow::Normal;
  }

  // A macro sees the template's top-level variables and its own arguments.
  Value make_macro(const Node& n) {
    const Node* node = &n;
    return Value::function([this, node](Args& args) {
      std::unordered_map<std::string, Value> scope;
      if (args.positional.size() > node->targets.size()) {
        throw std::invalid_argument(fmt::format("macro {} takes {} arguments, got {}", node->text,
                                                node->targets.size(), args.positional.size()));
      }
      for (size_t k = 0; k < node->targets.size(); ++k) {
        if (k < args.positional.size()) scope[node->targets[k]] = args.positional[k];
        else if (node->defaults[k]) scope[node->targets[k]] = eval(*node->defaults[k]);
        else scope[node->targets[k]] = Value::undefined(node->targets[k]);
      }
      for (auto& [key, v] : args.keyword) {
        bool known = false;
        for (const auto& t : node->targets) known |= t == key;
        if (!known) throw std::invalid_argument(fmt::format("macro {} has no argument {}", node->text, key));
        scope[key] = v;
      }
      std::vector<std::unordered_map<std::string, Value>> saved;
      saved.swap(scopes_);
      scopes_.push_back(saved.front());
      scopes_.push_back(std::move(scope));
      const int saved_depth = loop_depth_;
      loop_depth_ = 0;
      std::string out;
      try {
        run(node->body, out);
      } catch (...) {
        scopes_.swap(saved);
        loop_depth_ = saved_depth;
        throw;
      }
      scopes_.swap(saved);
      loop_depth_ = saved_depth;
      return Value::string(std::move(out));
    });
  }

  Value eval(const Expr& e) {
    try {
      return eval_inner(e);
    } catch (const std::invalid_argument& ex) {
      // Builtins report problems as invalid_argument; here they get the template line.
      error(e.line, ex.what());
    }
  }

  Value eval_inner(const Expr& e) {
    switch (e.kind) {
      case Expr::Kind::Literal: return e.literal;
      case Expr::Kind::Name: return lookup(e.name);
      case Expr::Kind::ListLit: {
        Value v = Value::new_list();
        v.is_tuple = e.negated;
        for (const auto& a : e.args) v.list->push_back(eval(*a));
        return v;
      }
      case Expr::Kind::DictLit: {
        Value v = Value::new_dict();
        for (size_t k = 0; k + 1 < e.args.size(); k += 2) {
          Value key = eval(*e.args[k]);
          if (!key.is_string()) error(e.line, "only string keys are supported in dict literals");
          v.dict->set(key.s, eval(*e.args[k + 1]));
        }
        return v;
      }
      case Expr::Kind::Attr: return get_attribute(require_defined(eval(*e.args[0]), e), e.name);
      case Expr::Kind::Index: return get_item(require_defined(eval(*e.args[0]), e), eval(*e.args[1]));
      case Expr::Kind::Slice: {
        Value obj = require_defined(eval(*e.args[0]), e);
        Value parts[3];
        for (int k = 0; k < 3; ++k) parts[k] = e.args[k + 1] ? eval(*e.args[k + 1]) : Value::none();
        return slice(obj, parts[0], parts[1], parts[2]);
      }
      case Expr::Kind::Call: {
        Value callee = eval(*e.args[0]);
        if (callee.type != Value::Type::Function) {
          std::string what = callee.is_undefined() && !callee.s.empty() ? "'" + callee.s + "'" : type_name(callee);
          error(e.line, fmt::format("{} is not callable (unknown or unsupported function or method)", what));
        }
        Args args = eval_args(e, 1);
        return (*callee.fn)(args);
      }
      case Expr::Kind::Filter: {
        Value subject = eval(*e.args[0]);
        Args args = eval_args(e, 1);
        return apply_filter(e.name, subject, args);
      }
      case Expr::Kind::Test: {
        Value subject = eval(*e.args[0]);
        Args args = eval_args(e, 1);
        bool r = apply_test(e.name, subject, args);
        return Value::boolean(e.negated ? !r : r);
      }
      case Expr::Kind::Unary: {
        Value v = eval(*e.args[0]);
        if (v.type == Value::Type::Int || v.type == Value::Type::Bool) {
          int64_t x = v.type == Value::Type::Bool ? v.b : v.i;
          return Value::integer(e.name == "-" ? -x : x);
        }
        if (v.type == Value::Type::Float) return Value::number(e.name == "-" ? -v.f : v.f);
        error(e.line, fmt::format("bad operand type for unary {}: {}", e.name, type_name(v)));
      }
      case Expr::Kind::Binary: return binary_op(e.name, eval(*e.args[0]), eval(*e.args[1]), e.negated);
      case Expr::Kind::And: {
        Value a = eval(*e.args[0]);
        return truthy(a) ? eval(*e.args[1]) : a;
      }
      case Expr::Kind::Or: {
        Value a = eval(*e.args[0]);
        return truthy(a) ? a : eval(*e.args[1]);
      }
      case Expr::Kind::Not: return Value::boolean(!truthy(eval(*e.args[0])));
      case Expr::Kind::Cond:
        if (truthy(eval(*e.args[1]))) return eval(*e.args[0]);
        return e.args[2] ? eval(*e.args[2]) : Value::undefined();
    }
    error(e.line, "internal error: unknown expression");
  }

  // Jinja's Undefined allows printing and tests, but not attribute or item access.
  Value require_defined(Value v, const Expr& e) {
    if (v.is_undefined()) {
      error(e.line, fmt::format("'{}' is undefined", v.s.empty() ? "value" : v.s));
    }
    return v;
  }

  Args eval_args(const Expr& e, size_t first) {
    Args args;
    for (size_t k = first; k < e.args.size(); ++k) args.positional.push_back(eval(*e.args[k]));
    for (const auto& [key, x] : e.kwargs) args.keyword.emplace_back(key, eval(*x));
    return args;
  }

  std::string name_;
  std::vector<std::unordered_map<std::string, Value>> scopes_;
  int loop_depth_ = 0;
};

}  // namespace

}  // namespace jinja

namespace {
std::string render_checked(const std::string& source, const ChatTemplateInput& input);
}

std::string render_chat_template(const std::string& source, const ChatTemplateInput& input) {
  // Templates are untrusted input: a number conversion the lexer or a filter could not do (a
  // literal too large for int64, say) must reach the user as an Error naming the template.
  try {
    return render_checked(source, input);
  } catch (const std::logic_error& e) {
    fail(input.source_name, "cannot evaluate the template: {}", e.what());
  }
}

namespace {
std::string render_checked(const std::string& source, const ChatTemplateInput& input) {
  using namespace jinja;
  const NodeList tree = parse_template(source, input.source_name);
  // Declared before every Value of this render, so destroyed after them: it empties the
  // containers that a reference cycle would otherwise keep alive.
  ContainerArena arena;

  std::unordered_map<std::string, Value> globals;
  Value messages = Value::new_list();
  for (const auto& m : input.messages) {
    Value msg = Value::new_dict();
    msg.dict->set("role", Value::string(m.role));
    msg.dict->set("content", Value::string(m.content));
    messages.list->push_back(msg);
  }
  globals["messages"] = messages;
  globals["add_generation_prompt"] = Value::boolean(input.add_generation_prompt);
  globals["bos_token"] = Value::string(input.bos_token);
  globals["eos_token"] = Value::string(input.eos_token);
  // transformers always passes these, as None when not given.
  globals["tools"] = Value::none();
  globals["documents"] = Value::none();
  if (input.date_string) globals["date_string"] = Value::string(*input.date_string);
  for (const auto& [key, v] : input.extra_variables.items()) globals[key] = from_json(v);
  install_globals(globals, input.now);

  std::string out;
  Renderer renderer(input.source_name, std::move(globals));
  renderer.run(tree, out);
  return out;
}
}  // namespace

}  // namespace billion
