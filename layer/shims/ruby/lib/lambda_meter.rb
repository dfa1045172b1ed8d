# Custom metrics for the invoke in progress, written in lambda-meter's record of it.
#
#   require "lambda_meter"
#   LambdaMeter.put_metric("OrdersPlaced", 1, "Count")
#   LambdaMeter.put_dimensions("tenant" => "acme")
#   LambdaMeter.set_property("orderId", 1001)
#
# aws-embedded-metrics' calls (put_metric, put_dimensions, set_property), and Powertools' names
# (add_metric(name:, unit:, value:), add_dimension, add_metadata); no gem, no flush: the values
# go into the invoke's own record.
#
# In the lambda-meter layer as ruby/lib (on the Ruby runtime's load path; the wrapper also
# appends it to RUBYLIB). It calls the C ABI of the preloaded library (lambda_meter.h) through
# Fiddle, Ruby's standard FFI. Where the layer is absent or the library is not metering, every
# call does nothing and returns INACTIVE or ABSENT, so the same code runs anywhere. Each call
# returns the library's status code (OK == 0); it never raises.
require "json"

module LambdaMeter
  OK = 0
  PENDING = 1
  INACTIVE = 2
  BAD_NAME = -1
  BAD_VALUE = -2
  BAD_UNIT = -3
  LIMIT = -4
  AMBIGUOUS = -5
  BUSY = -6
  NULL = -7
  # No lambda-meter library in this process (the layer is absent): nothing was kept.
  ABSENT = -100

  ABI = begin
    require "fiddle"
    process = Fiddle::Handle::DEFAULT
    {
      metric: Fiddle::Function.new(process["lambda_meter_metric"],
                                   [Fiddle::TYPE_VOIDP, Fiddle::TYPE_DOUBLE, Fiddle::TYPE_VOIDP],
                                   Fiddle::TYPE_INT),
      dimension: Fiddle::Function.new(process["lambda_meter_dimension"],
                                      [Fiddle::TYPE_VOIDP, Fiddle::TYPE_VOIDP], Fiddle::TYPE_INT),
      property: Fiddle::Function.new(process["lambda_meter_property"],
                                     [Fiddle::TYPE_VOIDP, Fiddle::TYPE_VOIDP], Fiddle::TYPE_INT),
    }.freeze
  rescue LoadError, Fiddle::DLError
    nil
  end

  module_function

  # Whether the lambda-meter library is in this process.
  def available?
    !ABI.nil?
  end

  # A C string for the call (nil stays NULL).
  def c(text)
    text.nil? ? nil : "#{text}\0"
  end

  def put_metric(name, value, unit = "None")
    return ABSENT if ABI.nil?
    number = Float(value, exception: false)
    return BAD_VALUE if number.nil?
    ABI[:metric].call(c(name), number, c(unit))
  end

  def put_dimensions(dimensions)
    status = OK
    dimensions.each do |k, v|
      s = add_dimension(k, v)
      status = s if [OK, PENDING].include?(status)
    end
    status
  end

  def set_property(key, value)
    return ABSENT if ABI.nil?
    json = begin
      JSON.generate(value)
    rescue StandardError
      return BAD_VALUE
    end
    ABI[:property].call(c(key), c(json))
  end

  def add_metric(name:, unit: "None", value:)
    put_metric(name, value, unit)
  end

  def add_dimension(name, value)
    return ABSENT if ABI.nil?
    ABI[:dimension].call(c(name), c(value))
  end

  def add_metadata(key, value)
    set_property(key, value)
  end
end
